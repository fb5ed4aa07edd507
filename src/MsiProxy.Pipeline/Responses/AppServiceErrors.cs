using System.Text.Json;

namespace MsiProxy.Responses;

/// <summary>
/// Errors in the App Service protocol's shape, <c>{"statusCode":…,"message":…,"correlationId":…}</c>: MSAL reads
/// <c>message</c> and <c>correlationId</c> into the exception an application sees. The proxy's own errors and the
/// upstream's IMDS-shaped ones are both rewritten into it, so a client speaking App Service never meets IMDS's shape.
/// </summary>
internal static class AppServiceErrors
{
    public static byte[] Body(int status, ReadOnlySpan<byte> imdsBody, string correlationId)
    {
        using var buffer = new MemoryStream(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("statusCode", status);
            writer.WriteString("message", MessageOf(imdsBody) ?? $"The managed identity endpoint answered {status}");
            writer.WriteString("correlationId", correlationId);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>IMDS's <c>error_description</c>, else its <c>error</c> (the metadata categories' shape), else nothing.</summary>
    private static string? MessageOf(ReadOnlySpan<byte> imdsBody)
    {
        string? error = null;
        try
        {
            var reader = new Utf8JsonReader(imdsBody);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && name is "error_description" or "error")
                {
                    var value = reader.GetString();
                    if (name == "error_description" && !string.IsNullOrWhiteSpace(value))
                    {
                        return value;
                    }

                    error ??= value;
                }

                reader.TrySkip();
            }
        }
        catch (JsonException)
        {
        }

        return string.IsNullOrWhiteSpace(error) ? null : error;
    }
}

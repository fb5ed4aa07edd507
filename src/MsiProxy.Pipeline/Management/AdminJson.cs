using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace MsiProxy.Management;

/// <summary>
/// Reads an admin API body, and refuses a bad one with 400 and an IMDS-shaped error that says what is wrong and
/// where: the line and position of a JSON syntax error, the field of a value of the wrong type, a field the call does not
/// take (a misspelt <c>identites</c> would otherwise register a client with no identities, silently).
/// </summary>
internal static class AdminJson
{
    private static readonly JsonSerializerOptions Options = ManagementJson.Default.Options;

    /// <summary>The body as <typeparamref name="T"/>, or the answer that refuses it.</summary>
    public static async Task<(T? Body, IResult? Refused)> ReadAsync<T>(HttpRequest request, CancellationToken cancellationToken)
        where T : class
    {
        if (!request.HasJsonContentType())
        {
            return (null, AdminApi.Error(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                "body: send JSON with Content-Type: application/json"));
        }

        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false); // bounded by Kestrel's body limit
        return Parse<T>(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    /// <summary>The checks of <see cref="ReadAsync{T}"/> on bytes already read.</summary>
    public static (T? Body, IResult? Refused) Parse<T>(ReadOnlyMemory<byte> json)
        where T : class
    {
        var body = (JsonTypeInfo<T>)Options.GetTypeInfo(typeof(T));
        var fields = body.Properties.ToDictionary(p => p.Name, p => p.PropertyType, StringComparer.OrdinalIgnoreCase);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            return (null, json.Span.Trim(" \t\r\n"u8).IsEmpty
                ? AdminApi.Invalid($"body: a JSON object is required ({string.Join(", ", fields.Keys)})")
                : AdminApi.Invalid($"body: not valid JSON at line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}"));
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, AdminApi.Invalid($"body: must be a JSON object ({string.Join(", ", fields.Keys)}), not {Kind(document.RootElement.ValueKind)}"));
            }

            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!fields.ContainsKey(property.Name))
                {
                    return (null, AdminApi.Invalid($"{Printable(property.Name)}: is not a field of this call ({string.Join(", ", fields.Keys)})"));
                }
            }

            try
            {
                return (document.RootElement.Deserialize(body), null);
            }
            catch (JsonException ex)
            {
                var field = Field(ex.Path);
                return (null, AdminApi.Invalid($"{field}: must be {Expected(fields, field)}"));
            }
        }
    }

    /// <summary><c>$.identities[1]</c> → <c>identities[1]</c>; the whole body is <c>body</c>.</summary>
    private static string Field(string? path) => path is null or "$" ? "body" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;

    private static string Expected(Dictionary<string, Type> fields, string field)
    {
        var bracket = field.IndexOf('[', StringComparison.Ordinal);
        var name = bracket < 0 ? field : field[..bracket];
        if (!fields.TryGetValue(name, out var type))
        {
            return "of the documented type";
        }

        if (bracket >= 0 && type.IsGenericType)
        {
            type = type.GetGenericArguments()[0]; // an element of a list
        }

        type = Nullable.GetUnderlyingType(type) ?? type;
        return type == typeof(string) ? "a string"
            : type == typeof(bool) ? "true or false"
            : type.IsGenericType && type.GetGenericArguments()[0] == typeof(string) ? "an array of strings"
            : "of the documented type";
    }

    private static string Kind(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>A field name from the caller, as it may appear in the error: printable and short.</summary>
    private static string Printable(string name)
    {
        var printable = new string([.. name.Take(64).Select(c => char.IsControl(c) ? '?' : c)]);
        return name.Length > 64 ? printable + "…" : printable;
    }
}

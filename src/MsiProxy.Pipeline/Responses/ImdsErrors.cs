using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MsiProxy.Responses;

/// <summary>
/// Error answers the way IMDS shapes them. Where IMDS's exact bytes are known (imds.md §3) they are used as they are,
/// because clients read them: Azure.Identity's probe looks for "Identity not found", az CLI falls back on a 400.
/// </summary>
internal static class ImdsErrors
{
    public const string JsonContentType = "application/json; charset=utf-8";

    /// <summary>The 88 bytes IMDS answers on the identity endpoints when <c>Metadata: true</c> is missing.</summary>
    public static readonly byte[] MetadataHeaderMissing =
        "{\"error\":\"invalid_request\",\"error_description\":\"Required metadata header not specified\"}"u8.ToArray();

    /// <summary>The metadata categories word the same refusal differently.</summary>
    public static readonly byte[] InstanceMetadataHeaderMissing = "{ \"error\": \"Bad request: . Required metadata header not specified\" }"u8.ToArray();

    /// <summary>The 68 bytes IMDS answers for an identity that is not assigned to the VM.</summary>
    public static readonly byte[] IdentityNotFound = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}"u8.ToArray();

    /// <summary>IMDS's answer for a path it does not serve.</summary>
    public static readonly byte[] NotFound = "{ \"error\": \"Not found\" }"u8.ToArray();

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary><c>{"error":…,"error_description":…}</c>, the identity endpoint's error shape, which the proxy uses for its own errors.</summary>
    public static byte[] Body(string error, string description)
    {
        using var buffer = new MemoryStream(128);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("error", error);
            writer.WriteString("error_description", description);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    public static string Text(ReadOnlySpan<byte> body) => Encoding.UTF8.GetString(body);
}

using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MsiProxy.ImdsEmulator.Protocol;

/// <summary>Writes answers the way IMDS does: exact JSON bytes, its Content-Type, Server and x-ms-request-id headers.</summary>
internal static class ImdsResponses
{
    public const string JsonContentType = "application/json; charset=utf-8";
    public const string TextContentType = "text/plain; charset=utf-8";

    /// <summary>The 88-byte body real IMDS sends when Metadata: true is missing on the identity endpoint.</summary>
    public const string MetadataHeaderMissing =
        "{\"error\":\"invalid_request\",\"error_description\":\"Required metadata header not specified\"}";

    /// <summary>The 68-byte body real IMDS sends for an unknown or unassigned identity.</summary>
    public const string IdentityNotFound = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";

    /// <summary>Instance (non-identity) endpoints word the missing-header error differently.</summary>
    public const string InstanceMetadataHeaderMissing = "{ \"error\": \"Bad request: . Required metadata header not specified\" }";

    public const string NotFound = "{ \"error\": \"Not found\" }";

    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>{"error":"...","error_description":"..."} as the identity endpoint shapes its errors.</summary>
    public static string IdentityError(string error, string description) => Json(w =>
    {
        w.WriteString("error", error);
        w.WriteString("error_description", description);
    });

    /// <summary>{"error":"..."} as the other endpoints shape their errors.</summary>
    public static string PlainError(string error) => Json(w => w.WriteString("error", error));

    public static string Json(Action<Utf8JsonWriter> writeProperties)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writeProperties(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static Task WriteAsync(HttpContext context, ImdsResponseHeaders headers, int status, string body, string contentType = JsonContentType)
    {
        var response = context.Response;
        response.StatusCode = status;
        headers.Apply(response);
        response.ContentType = contentType;
        var bytes = Encoding.UTF8.GetBytes(body);
        response.ContentLength = bytes.Length;
        return response.Body.WriteAsync(bytes, context.RequestAborted).AsTask();
    }

    /// <summary>Default body for a scripted status fault, shaped like the endpoint's own errors.</summary>
    public static string FaultBody(int status, bool identityEndpoint)
    {
        var (error, description) = status switch
        {
            404 => ("not_found", "IMDS endpoint is updating"),
            410 => ("service_unavailable", "IMDS is going through updates, available within 70 seconds"),
            429 => ("too_many_requests", "Too many requests"),
            500 => ("server_error", "Failed to retrieve token from the Active directory"),
            502 => ("bad_gateway", "Bad gateway"),
            503 => ("service_unavailable", "Service unavailable"),
            504 => ("gateway_timeout", "Gateway timeout"),
            _ => ("error", $"Injected status {status}"),
        };
        return identityEndpoint ? IdentityError(error, description) : PlainError(description);
    }
}

/// <summary>The headers real IMDS puts on every answer.</summary>
internal sealed record ImdsResponseHeaders(string Server)
{
    public void Apply(HttpResponse response)
    {
        response.Headers.Server = Server;
        response.Headers["x-ms-request-id"] = Guid.NewGuid().ToString();
    }
}

using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MsiProxy.Requests;

/// <summary>Errors the way IMDS shapes them: <c>{"error","error_description"}</c>, JSON, UTF-8.</summary>
public static class ImdsErrors
{
    public const string JsonContentType = "application/json; charset=utf-8";

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

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

    public static Task WriteAsync(HttpContext context, int status, string error, string description, TimeSpan? retryAfter = null)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }

        response.StatusCode = status;
        response.ContentType = JsonContentType;
        if (retryAfter is { } delay)
        {
            SetRetryAfter(response, delay);
        }

        var body = Body(error, description);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    /// <summary>Retry-After in whole seconds, at least 1 (the SDKs read the delta form).</summary>
    public static void SetRetryAfter(HttpResponse response, TimeSpan delay) =>
        response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

    public static Task NotFound(HttpContext context) =>
        WriteAsync(context, StatusCodes.Status404NotFound, "not_found", "Not found");
}

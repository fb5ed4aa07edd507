using System.Diagnostics;
using System.Globalization;

namespace MsiProxy.Responses;

/// <summary>
/// The one place that writes a response on the client listener. Every answer carries an <c>x-ms-request-id</c>, as
/// IMDS's do: the upstream's when it answered, else the request's trace id (the <c>@tr</c> of its log and audit lines),
/// so the id an SDK prints in its error leads an operator to the proxy's record; and, when the client asks for it with
/// <c>x-ms-return-client-request-id: true</c>, its own <c>x-ms-client-request-id</c> back.
/// </summary>
internal static class AnswerWriter
{
    public static async Task WriteAsync(HttpContext context, Answer answer, Requests.Dialect dialect, TimeProvider time)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return;
        }

        response.StatusCode = answer.Status;
        response.ContentType = ImdsErrors.JsonContentType;
        var requestId = (answer as BodyAnswer)?.UpstreamRequestId ?? RequestId(Activity.Current);
        response.Headers["x-ms-request-id"] = requestId;
        var requestHeaders = context.Request.Headers;
        if (requestHeaders["x-ms-return-client-request-id"] == "true" && requestHeaders["x-ms-client-request-id"] is [{ Length: > 0 and <= 128 } id])
        {
            response.Headers["x-ms-client-request-id"] = id;
        }

        if (dialect == Requests.Dialect.AppService)
        {
            answer = InAppServiceShape(answer, requestId);
        }

        switch (answer)
        {
            case TokenAnswer { Token: var token }:
                var buffer = response.BodyWriter.GetSpan(token.MaxBodyLength);
                var length = token.WriteBody(time.GetUtcNow(), buffer);
                response.ContentLength = length;
                response.BodyWriter.Advance(length);
                await response.BodyWriter.FlushAsync(context.RequestAborted).ConfigureAwait(false);
                return;
            case BodyAnswer body:
                response.ContentType = body.ContentType;
                if (body.RetryAfter is { } retryAfter)
                {
                    response.Headers.RetryAfter = RetryAfterSeconds(retryAfter);
                }

                if (body.Allow is { } allow)
                {
                    response.Headers.Allow = allow;
                }

                response.ContentLength = body.Body.Length;
                await response.Body.WriteAsync(body.Body, context.RequestAborted).ConfigureAwait(false);
                return;
        }
    }

    /// <summary>
    /// The App Service protocol's shapes: a token without <c>expires_in</c>, and every error — the proxy's or the
    /// upstream's — as <c>{"statusCode","message","correlationId"}</c>. Status and <c>Retry-After</c> stay as they are.
    /// </summary>
    private static Answer InAppServiceShape(Answer answer, string correlationId) => answer switch
    {
        TokenAnswer { Token: var token } => new BodyAnswer(StatusCodes.Status200OK, token.AppServiceBody, ImdsErrors.JsonContentType),
        BodyAnswer { Status: >= 400 } body => body with { Body = AppServiceErrors.Body(body.Status, body.Body.Span, correlationId), ContentType = ImdsErrors.JsonContentType },
        _ => answer,
    };

    /// <summary>
    /// A trace id in IMDS's request-id form (a GUID); a fresh one when the request has no trace. The GUID's "D" form is
    /// the trace id's 32 lower-case hex digits with dashes after the 8th, 12th, 16th and 20th, so it is written as that
    /// rather than parsed into a <see cref="Guid"/> and formatted back.
    /// </summary>
    internal static string RequestId(Activity? activity)
    {
        if (activity is null)
        {
            return Guid.NewGuid().ToString();
        }

        // ActivityTraceId holds its hex string: ToHexString() neither allocates nor converts.
        return string.Create(36, activity.TraceId.ToHexString(), static (text, hex) =>
        {
            hex.AsSpan(0, 8).CopyTo(text);
            text[8] = '-';
            hex.AsSpan(8, 4).CopyTo(text[9..]);
            text[13] = '-';
            hex.AsSpan(12, 4).CopyTo(text[14..]);
            text[18] = '-';
            hex.AsSpan(16, 4).CopyTo(text[19..]);
            text[23] = '-';
            hex.AsSpan(20).CopyTo(text[24..]);
        });
    }

    /// <summary>Retry-After in whole seconds, at least 1 (the SDKs read the delta form).</summary>
    public static string RetryAfterSeconds(TimeSpan delay) =>
        Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}

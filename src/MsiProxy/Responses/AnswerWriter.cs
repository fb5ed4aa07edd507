using System.Globalization;

namespace MsiProxy.Responses;

/// <summary>The one place that writes a response on the client listener.</summary>
internal static class AnswerWriter
{
    public static async Task WriteAsync(HttpContext context, Answer answer, TimeProvider time)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return;
        }

        response.StatusCode = answer.Status;
        response.ContentType = ImdsErrors.JsonContentType;
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

                if (body.UpstreamRequestId is { } requestId)
                {
                    response.Headers["x-ms-request-id"] = requestId;
                }

                response.ContentLength = body.Body.Length;
                await response.Body.WriteAsync(body.Body, context.RequestAborted).ConfigureAwait(false);
                return;
        }
    }

    /// <summary>Retry-After in whole seconds, at least 1 (the SDKs read the delta form).</summary>
    public static string RetryAfterSeconds(TimeSpan delay) =>
        Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}

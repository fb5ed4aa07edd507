namespace MsiProxy.Upstreams;

/// <summary>
/// The final answer of an upstream (after retries), buffered; or one the proxy made for it when none could answer
/// (502, 503, 504, or 429 when the client's own queue was full).
/// </summary>
internal sealed record UpstreamResponse(int Status, byte[] Body, string? ContentType)
{
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The upstream base URL that answered, when one did.</summary>
    public string? Upstream { get; init; }

    /// <summary>The upstream's <c>x-ms-request-id</c>.</summary>
    public string? RequestId { get; init; }

    public int Attempts { get; init; }

    /// <summary>Why the proxy produced this response itself (no_upstream, circuit_open, unreachable, timeout, queue_full, over_budget), or null.</summary>
    public string? ProxyError { get; init; }

    public bool IsSuccess => Status == 200;

    /// <summary>Buffers an upstream answer: status, body, content type, <c>Retry-After</c> and <c>x-ms-request-id</c>.</summary>
    public static async Task<UpstreamResponse> ReadAsync(HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        return new UpstreamResponse(status, await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false),
            response.Content.Headers.ContentType?.ToString())
        {
            // A 429 always tells the client when to come back; IMDS does not always say.
            RetryAfter = response.Headers.RetryAfter?.Delta ?? (status == StatusCodes.Status429TooManyRequests ? TimeSpan.FromSeconds(1) : null),
            RequestId = response.Headers.TryGetValues("x-ms-request-id", out var ids) ? ids.FirstOrDefault() : null,
        };
    }
}

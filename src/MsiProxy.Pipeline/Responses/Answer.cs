using MsiProxy.Caching;
using MsiProxy.Upstreams;

namespace MsiProxy.Responses;

/// <summary>What the client gets back: a cached or fetched token, or a complete buffered body.</summary>
internal abstract record Answer(int Status);

/// <summary>A token from the cache, written with its <c>expires_in</c> recomputed for the moment it is sent.</summary>
internal sealed record TokenAnswer(CachedToken Token) : Answer(StatusCodes.Status200OK);

/// <summary>
/// A whole response body: an upstream's answer passed through (status, body, content type, <c>Retry-After</c>), or an
/// error the proxy made itself, shaped like IMDS's.
/// </summary>
internal sealed record BodyAnswer(int Status, ReadOnlyMemory<byte> Body, string ContentType) : Answer(Status)
{
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The <c>Allow</c> header of a 405.</summary>
    public string? Allow { get; init; }

    /// <summary>The upstream's <c>x-ms-request-id</c>, passed on so a client's report can be matched with IMDS's.</summary>
    public string? UpstreamRequestId { get; init; }

    public static BodyAnswer Error(int status, string error, string description, TimeSpan? retryAfter = null) =>
        new(status, ImdsErrors.Body(error, description), ImdsErrors.JsonContentType) { RetryAfter = retryAfter };

    public static BodyAnswer Exact(int status, byte[] body) => new(status, body, ImdsErrors.JsonContentType);

    public static BodyAnswer From(UpstreamResponse response) =>
        new(response.Status, response.Body, response.ContentType ?? ImdsErrors.JsonContentType)
        {
            RetryAfter = response.RetryAfter,
            UpstreamRequestId = response.RequestId,
        };
}

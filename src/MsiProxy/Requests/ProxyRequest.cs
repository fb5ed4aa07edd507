using System.Net;
using MsiProxy.Clients;

namespace MsiProxy.Requests;

/// <summary>
/// What the proxy learned about one client request, from the gate to the response: who called, what was asked,
/// and how it ended. Stored as an HttpContext feature; the request log and the audit log read it.
/// </summary>
public sealed class ProxyRequest
{
    public required IPAddress Caller { get; init; }

    /// <summary>Stopwatch timestamp of arrival.</summary>
    public long StartedAt { get; init; } = System.Diagnostics.Stopwatch.GetTimestamp();
    public ClientRegistration? Client { get; set; }

    /// <summary>
    /// The normalised path: what the allow-list was checked against and what is forwarded. Null when the request was
    /// refused before its path was accepted, so the request log falls back to the path as received instead of "".
    /// </summary>
    public string? Path { get; set; }

    public QueryParameters Query { get; set; } = QueryParameters.Empty;

    /// <summary>token, instance or other — a bounded label.</summary>
    public string Route { get; set; } = "other";

    /// <summary>hit, refresh, miss, bypass, forwarded, denied, throttled, invalid, error — a bounded label.</summary>
    public string Outcome { get; set; } = "unknown";

    /// <summary>Why a request was refused (unregistered, pending, identity, path, method, metadata_header, bad_request).</summary>
    public string? DenialReason { get; set; }

    public string? Upstream { get; set; }
    public IdentitySelector? Identity { get; set; }
    public string? Resource { get; set; }
}

public static class ProxyRequestExtensions
{
    public static ProxyRequest? GetProxyRequest(this HttpContext context) => context.Features.Get<ProxyRequest>();
}

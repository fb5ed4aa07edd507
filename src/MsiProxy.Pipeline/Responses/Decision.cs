using MsiProxy.Clients;
using MsiProxy.Requests;

namespace MsiProxy.Responses;

/// <summary>How a client request ended — a bounded set, used as the outcome label of metrics, spans, logs and audit.</summary>
internal enum RequestOutcome
{
    /// <summary>A token from the cache.</summary>
    Hit,

    /// <summary>A token from the cache; a background refresh was started.</summary>
    Refresh,

    /// <summary>A token fetched upstream (or joined to a fetch already under way).</summary>
    Miss,

    /// <summary>A token fetched upstream because the client asked to bypass the cache or named its cached token revoked.</summary>
    Bypass,

    /// <summary>A request forwarded upstream; the upstream's answer passed through.</summary>
    Forwarded,

    /// <summary>A forwarded request answered from the short shared cache of identical answers.</summary>
    ForwardedShared,

    /// <summary>Refused: the caller, the endpoint or the identity is not allowed.</summary>
    Denied,

    /// <summary>Refused: the request itself is malformed.</summary>
    Invalid,

    /// <summary>Refused for now: this client's own queue for the upstream is full, or its wait would exceed its budget.</summary>
    Throttled,

    /// <summary>The upstream could not answer (unreachable, timed out, failing) or answered an error.</summary>
    UpstreamError,

    /// <summary>The proxy itself failed.</summary>
    Failed,
}

/// <summary>
/// What the proxy decided for one client request, and the answer that goes with it. The gate and the endpoints return
/// one; the request wrapper (<see cref="Hosting.ClientRequests"/>) writes the answer and records the decision — the
/// one place that logs, audits, counts and tags a request.
/// </summary>
internal sealed record Decision(RequestOutcome Outcome, Answer Answer)
{
    /// <summary>Why a request was refused: a bounded label (unregistered, pending, path, method, metadata_header, endpoint, identity, query, body…).</summary>
    public string? Reason { get; init; }

    public ClientRegistration? Client { get; init; }
    public ImdsEndpoint? Endpoint { get; init; }

    /// <summary>The canonical path, once the gate accepted one.</summary>
    public string? Path { get; init; }

    /// <summary>The identity a token request was served (or refused) for.</summary>
    public IdentitySelector? Identity { get; init; }

    public string? Resource { get; init; }

    /// <summary>The upstream that answered, when one did.</summary>
    public string? Upstream { get; init; }

    public int Status => Answer.Status;

    public static Decision Refused(RequestOutcome outcome, string reason, Answer answer) => new(outcome, answer) { Reason = reason };

    public static Decision Failed() => new(RequestOutcome.Failed, FailedAnswer);

    private static readonly BodyAnswer FailedAnswer =
        BodyAnswer.Error(StatusCodes.Status500InternalServerError, "server_error", "The proxy failed to handle the request");
}

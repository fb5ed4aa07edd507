using System.Diagnostics;
using MsiProxy.Responses;
using MsiProxy.Upstreams;
using Polly.CircuitBreaker;

namespace MsiProxy.Telemetry;

/// <summary>
/// The spans MsiProxy adds to a trace and the attributes it puts on them, named in one place so that the code,
/// docs/observability.md and the tests agree. A client request's trace reads: server span (ASP.NET Core, tagged
/// with the decision) → <see cref="UpstreamCall"/> → one <see cref="UpstreamAttempt"/> per try (retries are events
/// on the call). Nothing here ever records a token or a response body.
/// </summary>
internal static class TraceSpans
{
    public const string UpstreamCall = "upstream call";
    public const string BackgroundCall = "upstream background call";
    public const string UpstreamAttempt = "upstream attempt";

    public const string Client = "msiproxy.client";
    public const string Route = "msiproxy.route";
    public const string Outcome = "msiproxy.outcome";
    public const string DeniedReason = "msiproxy.denied_reason";
    public const string Identity = "msiproxy.identity";
    public const string Resource = "msiproxy.resource";
    public const string Upstream = "msiproxy.upstream";
    public const string Attempts = "msiproxy.attempts";
    public const string ProxyError = "msiproxy.proxy_error";
    public const string CircuitState = "msiproxy.circuit_state";
    public const string Purpose = "msiproxy.fetch.purpose";

    /// <summary>
    /// A call a client waits for is part of that client's trace. Background work (a refresh ahead of expiry, a prefetch
    /// on registration) outlives whatever set it off, so it starts a trace of its own and links back to the trigger.
    /// </summary>
    public static Activity? StartUpstreamCall(bool background)
    {
        if (!background)
        {
            return MsiProxyTelemetry.ActivitySource.StartActivity(UpstreamCall, ActivityKind.Internal);
        }

        var trigger = Activity.Current;
        ActivityLink[]? links = trigger is null ? null : [new ActivityLink(trigger.Context)];
        // A root needs no current activity; callers run this inside their own async flow, so theirs is untouched.
        Activity.Current = null;
        var activity = MsiProxyTelemetry.ActivitySource.StartActivity(BackgroundCall, ActivityKind.Internal, default(ActivityContext), links: links);
        activity?.SetTag(Purpose, "refresh");
        return activity;
    }

    /// <summary>How a call ended: the final status, how many attempts, and the proxy's own error (circuit_open, timeout…) if any.</summary>
    public static void EndUpstreamCall(Activity? activity, UpstreamResponse response, CircuitState circuit)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("http.response.status_code", response.Status);
        activity.SetTag(Attempts, response.Attempts);
        activity.SetTag(Upstream, response.Upstream);
        activity.SetTag(CircuitState, circuit.ToString());
        if (response.ProxyError is { } error)
        {
            activity.SetTag(ProxyError, error);
        }

        if (!response.IsSuccess)
        {
            activity.SetStatus(ActivityStatusCode.Error, response.ProxyError ?? "upstream " + response.Status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The decision, on the server span of the request: who asked, for what, and what the proxy did.</summary>
    public static void TagDecision(Activity? server, Decision decision, string route, string outcome)
    {
        if (server is null || !server.IsAllDataRequested)
        {
            return;
        }

        server.SetTag(Route, route);
        server.SetTag(Outcome, outcome);
        server.SetTag(Client, decision.Client?.Name);
        server.SetTag(DeniedReason, decision.Reason);
        server.SetTag(Identity, decision.Identity?.ToString());
        server.SetTag(Resource, decision.Resource);
        server.SetTag(Upstream, decision.Upstream);
    }
}

using System.Diagnostics;
using MsiProxy.Responses;

namespace MsiProxy.Telemetry;

/// <summary>
/// Records one client request from its <see cref="Decision"/>, in one place: the metrics, the decision's tags on the
/// server span, one request-log line (<c>MsiProxy.Requests</c>) and one audit event (<c>MsiProxy.Audit</c>: who asked
/// for what, and what the proxy did — a token decision, a forwarded request, a refusal). Never a token, a secret or a body.
/// </summary>
internal sealed partial class RequestRecorder(MsiProxyTelemetry telemetry, ILoggerFactory loggerFactory)
{
    public const string RequestCategory = "MsiProxy.Requests";

    private readonly ILogger _requests = loggerFactory.CreateLogger(RequestCategory);
    private readonly ILogger _audit = loggerFactory.CreateLogger(MsiProxyTelemetry.AuditCategory);

    public void Record(HttpContext context, Decision decision, TimeSpan elapsed)
    {
        var route = decision.Endpoint?.Name ?? "unknown";
        var outcome = Label(decision.Outcome);
        var status = decision.Status;
        telemetry.Requests.Add(1, new TagList
        {
            { TraceSpans.Route, route },
            { TraceSpans.Outcome, outcome },
            { "http.response.status_code", status },
        });
        telemetry.RequestDuration.Record(elapsed.TotalSeconds, new TagList { { TraceSpans.Route, route }, { TraceSpans.Outcome, outcome } });
        switch (decision.Outcome)
        {
            case RequestOutcome.Denied or RequestOutcome.Invalid:
                telemetry.Denials.Add(1, new KeyValuePair<string, object?>("reason", decision.Reason));
                break;
            case RequestOutcome.Hit or RequestOutcome.Refresh:
                telemetry.CacheHits.Add(1);
                break;
            case RequestOutcome.Miss or RequestOutcome.Bypass:
                telemetry.CacheMisses.Add(1);
                break;
            case RequestOutcome.Throttled:
                telemetry.ClientThrottled.Add(1, new KeyValuePair<string, object?>("reason", decision.Reason));
                break;
        }

        TraceSpans.TagDecision(Activity.Current, decision, route, outcome);

        var caller = context.Connection.RemoteIpAddress?.ToString();
        // A refused target is recorded as it was sent: Kestrel's decoded path drops the dot segments of a traversal attempt.
        var path = decision.Path ?? RawPath(context);
        var milliseconds = elapsed.TotalMilliseconds;
        if (_requests.IsEnabled(LogLevel.Information))
        {
            Completed(_requests, caller, decision.Client?.Name, context.Request.Method, path, status, outcome, decision.Upstream,
                context.Request.Headers["x-ms-client-request-id"].ToString() is { Length: > 0 } id ? id : null, milliseconds);
        }

        if (_audit.IsEnabled(LogLevel.Information))
        {
            Audited(_audit, AuditDecision(decision), route, decision.Client?.Name, decision.Client?.WorkloadId, caller,
                decision.Identity?.ToString(), decision.Resource, path, status, decision.Upstream, milliseconds);
        }
    }

    private static string RawPath(HttpContext context)
    {
        var target = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "";
        var query = target.IndexOf('?', StringComparison.Ordinal);
        return query < 0 ? target : target[..query];
    }

    /// <summary>The outcome label of metrics and spans: a fixed set.</summary>
    public static string Label(RequestOutcome outcome) => outcome switch
    {
        RequestOutcome.Hit => "hit",
        RequestOutcome.Refresh => "refresh",
        RequestOutcome.Miss => "miss",
        RequestOutcome.Bypass => "bypass",
        RequestOutcome.Forwarded => "forwarded",
        RequestOutcome.ForwardedShared => "forwarded_shared",
        RequestOutcome.Denied => "denied",
        RequestOutcome.Invalid => "invalid",
        RequestOutcome.Throttled => "throttled",
        RequestOutcome.UpstreamError => "upstream_error",
        _ => "error",
    };

    /// <summary>The audit log's decision: what happened, and for refusals why (denied:identity, invalid:query…).</summary>
    private static string AuditDecision(Decision decision) => decision.Outcome switch
    {
        RequestOutcome.Hit or RequestOutcome.Refresh => "cache",
        RequestOutcome.Miss or RequestOutcome.Bypass => "fetched",
        RequestOutcome.Forwarded => "forwarded",
        RequestOutcome.ForwardedShared => "forwarded:shared",
        RequestOutcome.Denied or RequestOutcome.Invalid => Label(decision.Outcome) + ":" + decision.Reason,
        RequestOutcome.Throttled => "throttled",
        RequestOutcome.UpstreamError => "upstream_error",
        _ => "error",
    };

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, EventName = "RequestCompleted",
        Message = "{Caller} ({ClientName}) {Method} {Path} → {StatusCode} {Outcome} via {Upstream} [{ClientRequestId}] in {DurationMs:0.0} ms")]
    private static partial void Completed(ILogger logger, string? caller, string? clientName, string method, string? path, int statusCode,
        string outcome, string? upstream, string? clientRequestId, double durationMs);

    // Every field is in the template: a parameter missing from it was dropped on the way through Serilog (the workload id was).
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, EventName = "Decision",
        Message = "{Decision} {Endpoint} for {ClientName} (workload {WorkloadId}, {Caller}) identity {Identity} resource {Resource} path {Path}: {Status} via {Upstream} in {DurationMs:0.0} ms")]
    private static partial void Audited(ILogger logger, string decision, string endpoint, string? clientName, string? workloadId, string? caller,
        string? identity, string? resource, string? path, int status, string? upstream, double durationMs);
}

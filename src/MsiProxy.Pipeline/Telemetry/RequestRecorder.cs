using System.Diagnostics;
using MsiProxy.Responses;
using MsiProxy.ServiceDefaults;

namespace MsiProxy.Telemetry;

/// <summary>
/// Records one client request from its <see cref="Decision"/>, in one place: the metrics, the decision's tags on the
/// server span, one request-log line (<c>MsiProxy.Requests</c>) and one audit event (<c>MsiProxy.Audit</c>: who asked
/// for what, and what the proxy did — a token decision, a forwarded request, a refusal). Never a token, a secret or a body.
/// Both events are written as <see cref="ShapedLogs"/> (their cost per request is why), at the configured levels.
/// </summary>
internal sealed class RequestRecorder(MsiProxyTelemetry telemetry, ShapedLogs shapedLogs)
{
    public const string RequestCategory = "MsiProxy.Requests";

    internal static readonly LogShape CompletedShape = new(RequestCategory, new EventId(1, "RequestCompleted"),
        "{Caller} ({ClientName}) {Method} {Path} → {StatusCode} {Outcome} via {Upstream} [{ClientRequestId}] in {DurationMs:0.0} ms");

    // Every field is in the template: a field missing from it would not be a property of the event.
    internal static readonly LogShape DecisionShape = new(MsiProxyTelemetry.AuditCategory, new EventId(100, "Decision"),
        "{Decision} {Endpoint} for {ClientName} (workload {WorkloadId}, {Caller}) identity {Identity} resource {Resource} path {Path}: {Status} via {Upstream} in {DurationMs:0.0} ms");

    private readonly ShapedLog _completed = shapedLogs.For(CompletedShape);
    private readonly ShapedLog _decided = shapedLogs.For(DecisionShape);

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
        if (_completed.IsEnabled)
        {
            var values = new LogValues();
            values[0] = caller;
            values[1] = decision.Client?.Name;
            values[2] = context.Request.Method;
            values[3] = path;
            values[4] = status;
            values[5] = outcome;
            values[6] = decision.Upstream;
            values[7] = context.Request.Headers["x-ms-client-request-id"].ToString() is { Length: > 0 } id ? id : null;
            values[8] = milliseconds;
            _completed.Write(values, context);
        }

        if (_decided.IsEnabled)
        {
            var values = new LogValues();
            values[0] = AuditDecision(decision);
            values[1] = route;
            values[2] = decision.Client?.Name;
            values[3] = decision.Client?.WorkloadId;
            values[4] = caller;
            values[5] = decision.Identity?.ToString();
            values[6] = decision.Resource;
            values[7] = path;
            values[8] = status;
            values[9] = decision.Upstream;
            values[10] = milliseconds;
            _decided.Write(values, context);
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
}

using System.Diagnostics;

namespace MsiProxy.Upstreams;

/// <summary>
/// Propagates W3C trace context to msiserviceclient upstreams (another MsiProxy, so a two-tier deployment shows one
/// trace) but sends none to IMDS itself: IMDS is documented to reject requests that look proxied, and trace headers
/// are of no use to it.
/// </summary>
internal sealed class ImdsAwarePropagator(DistributedContextPropagator inner) : DistributedContextPropagator
{
    private static readonly string[] TraceHeaders = ["traceparent", "tracestate", "baggage", "Request-Id", "Correlation-Context"];

    public override IReadOnlyCollection<string> Fields => inner.Fields;

    public override void Inject(Activity? activity, object? carrier, PropagatorSetterCallback? setter)
    {
        if (carrier is HttpRequestMessage { RequestUri.Host: "169.254.169.254" } request)
        {
            foreach (var header in TraceHeaders)
            {
                request.Headers.Remove(header);
            }

            return;
        }

        inner.Inject(activity, carrier, setter);
    }

    public override void ExtractTraceIdAndState(object? carrier, PropagatorGetterCallback? getter, out string? traceId, out string? traceState) =>
        inner.ExtractTraceIdAndState(carrier, getter, out traceId, out traceState);

    public override IEnumerable<KeyValuePair<string, string?>>? ExtractBaggage(object? carrier, PropagatorGetterCallback? getter) =>
        inner.ExtractBaggage(carrier, getter);
}

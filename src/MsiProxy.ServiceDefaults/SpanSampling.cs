using OpenTelemetry.Trace;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// When spans go nowhere (no OTLP exporter), each request still gets a trace and span id — logs carry them (@tr, @sp)
/// and a W3C traceparent still reaches an msiserviceclient — but its spans are not recorded, so no instrumentation
/// spends time filling attributes nobody reads: on the cached-token path that is most of the telemetry cost.
/// With an exporter, every span is recorded (parent-based, so a traced caller's decision is kept).
/// <c>OTEL_TRACES_SAMPLER</c>, when set, is left to the OpenTelemetry SDK.
/// </summary>
internal static class SpanSampling
{
    public static Sampler? For(bool exporting, string? configuredSampler) =>
        !string.IsNullOrWhiteSpace(configuredSampler) ? null
        : exporting ? new ParentBasedSampler(new AlwaysOnSampler())
        : new IdsOnlySampler();

    /// <summary>Drop: the SDK then creates propagation-only activities (ids, no recorded data).</summary>
    private sealed class IdsOnlySampler : Sampler
    {
        public IdsOnlySampler() => Description = "IdsOnly";

        public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) => new(SamplingDecision.Drop);
    }
}

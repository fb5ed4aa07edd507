using System.Diagnostics;
using MsiProxy.Telemetry;

namespace MsiProxy.Tests.Telemetry;

/// <summary>Requests and settings the telemetry tests share.</summary>
internal static class Scenario
{
    public const string ManagementResource = "https://management.azure.com/";

    public static HttpRequestMessage Token(string resource = ManagementResource, string? clientId = null)
    {
        var uri = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + Uri.EscapeDataString(resource)
            + (clientId is null ? "" : "&client_id=" + clientId);
        return new HttpRequestMessage(HttpMethod.Get, uri) { Headers = { { "Metadata", "true" } } };
    }

    public static HttpRequestMessage Instance() =>
        new(HttpMethod.Get, "/metadata/instance?api-version=2021-02-01") { Headers = { { "Metadata", "true" } } };

    /// <summary>Retries in milliseconds rather than seconds, so a test with retries stays quick.</summary>
    public static Dictionary<string, string?> WithFastRetries(this Dictionary<string, string?> settings)
    {
        settings["MsiProxy:Resilience:BaseDelay"] = "00:00:00.010";
        settings["MsiProxy:Resilience:MaxDelay"] = "00:00:00.050";
        return settings;
    }

    /// <summary>
    /// The one server span of <paramref name="client"/>'s request with this outcome. ASP.NET Core ends the server
    /// span just after the response is sent, so a test may get its answer a moment before the span is exported.
    /// </summary>
    public static async Task<Activity> ServerSpanAsync(this TelemetryCapture capture, string client, string outcome) =>
        await capture.SpanAsync(s => s.Kind == ActivityKind.Server && Tag(s, TraceSpans.Client) == client && Tag(s, TraceSpans.Outcome) == outcome,
            $"server span of {client} with outcome {outcome}");

    public static async Task<Activity> SpanAsync(this TelemetryCapture capture, Func<Activity, bool> predicate, string what)
    {
        string ServerSpans() => "server spans: " + string.Join("; ", capture.Spans.Where(s => s.Kind == ActivityKind.Server)
            .Select(s => string.Join(",", s.TagObjects.Select(t => t.Key + "=" + t.Value))));
        var matches = await Eventually(() => capture.Spans.Where(predicate).ToList(), m => m.Count > 0, what: what, details: ServerSpans);
        Assert.True(matches.Count == 1, $"Expected one {what}, found {matches.Count}; {ServerSpans()}");
        return matches[0];
    }

    public static IReadOnlyList<Activity> InTrace(this TelemetryCapture capture, Activity span) =>
        capture.Spans.Where(s => s.TraceId == span.TraceId).ToList();

    public static IReadOnlyList<Activity> ChildrenOf(this TelemetryCapture capture, Activity parent, string name) =>
        capture.Spans.Where(s => s.ParentSpanId == parent.SpanId && s.TraceId == parent.TraceId && s.OperationName == name).ToList();

    public static string? Tag(this Activity activity, string key) =>
        activity.GetTagItem(key) is { } value ? Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) : null;
}

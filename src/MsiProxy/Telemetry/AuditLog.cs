using MsiProxy.Caching;
using MsiProxy.Requests;

namespace MsiProxy.Telemetry;

/// <summary>
/// One structured event per token decision, on its own logger category (<c>MsiProxy.Audit</c>) so operators can
/// route it to its own sink. It says who asked for which identity and resource, and what happened — never the token.
/// </summary>
public sealed partial class AuditLog(ILoggerFactory loggerFactory)
{
    public const string Category = "MsiProxy.Audit";

    private readonly ILogger _logger = loggerFactory.CreateLogger(Category);

    public void Decision(ProxyRequest request, string decision, UpstreamResponse? upstream, int status)
    {
        if (!_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        TokenDecision(_logger, request.Caller.ToString(), request.Client?.Name, request.Client?.ContainerId,
            request.Identity?.ToString(), request.Resource, decision, upstream?.Upstream ?? request.Upstream, status,
            System.Diagnostics.Stopwatch.GetElapsedTime(request.StartedAt).TotalMilliseconds);
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, EventName = "TokenDecision",
        Message = "Token {Decision} for {ClientName} (container {ContainerId}, {Caller}) identity {Identity} resource {Resource}: {Status} via {Upstream} in {DurationMs:0.0} ms")]
    // Every field is in the template: a parameter missing from it was dropped on the way through Serilog (ContainerId was).
    private static partial void TokenDecision(ILogger logger, string caller, string? clientName, string? containerId, string? identity,
        string? resource, string decision, string? upstream, int status, double durationMs);
}

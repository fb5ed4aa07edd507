using System.Diagnostics;
using MsiProxy.Requests;

namespace MsiProxy.Telemetry;

/// <summary>
/// The one wrapper every client request goes through: a single request-log line (caller, client, path, status,
/// upstream, duration), the request metrics, and error shaping — an unexpected exception becomes an IMDS-style
/// 500 without details, never a stack trace or a half-written response.
/// </summary>
public sealed partial class RequestTelemetryMiddleware(RequestDelegate next, MsiProxyTelemetry telemetry, ILoggerFactory loggerFactory)
{
    public const string Category = "MsiProxy.Requests";

    private readonly ILogger _logger = loggerFactory.CreateLogger(Category);

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await next(context);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !context.RequestAborted.IsCancellationRequested)
        {
            Unhandled(_logger, ex.GetType().Name, context.Request.Path);
            if (context.GetProxyRequest() is { } failed)
            {
                failed.Outcome = "error";
            }

            await ImdsErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, "server_error", "The proxy failed to handle the request");
        }
        catch (OperationCanceledException)
        {
            // The client went away; nothing to answer.
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(started);
            var request = context.GetProxyRequest();
            var status = context.Response.StatusCode;
            var route = request?.Route ?? "other";
            var outcome = request?.Outcome ?? "unknown";
            TraceSpans.TagDecision(Activity.Current, request, route, outcome);
            telemetry.Requests.Add(1, new TagList
            {
                { "msiproxy.route", route },
                { "msiproxy.outcome", outcome },
                { "http.response.status_code", status },
            });
            telemetry.RequestDuration.Record(elapsed.TotalSeconds, new TagList { { "msiproxy.route", route }, { "msiproxy.outcome", outcome } });
            if (_logger.IsEnabled(LogLevel.Information))
            {
                Completed(_logger, context.Connection.RemoteIpAddress?.ToString(), request?.Client?.Name, request?.Path ?? context.Request.Path.Value,
                    status, outcome, request?.Upstream, elapsed.TotalMilliseconds);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, EventName = "RequestCompleted",
        Message = "{Caller} ({ClientName}) GET {Path} → {StatusCode} {Outcome} via {Upstream} in {DurationMs:0.0} ms")]
    private static partial void Completed(ILogger logger, string? caller, string? clientName, string? path, int statusCode, string outcome,
        string? upstream, double durationMs);

    // Only the exception type: messages can carry upstream bodies, and upstream bodies can carry tokens.
    [LoggerMessage(EventId = 2, Level = LogLevel.Error, EventName = "RequestFailed", Message = "Unhandled {ExceptionType} while handling {Path}")]
    private static partial void Unhandled(ILogger logger, string exceptionType, PathString path);
}

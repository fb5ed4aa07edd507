using System.Diagnostics;
using MsiProxy.Forwarding;
using MsiProxy.Requests;
using MsiProxy.Responses;
using MsiProxy.Telemetry;
using MsiProxy.Tokens;

namespace MsiProxy.Routing;

/// <summary>
/// Everything the client listener serves: the routing table, in the order a request meets it, and the one wrapper
/// that gives every request the same error shaping, response writing and telemetry.
/// </summary>
internal sealed partial class ClientRequests(RequestGate gate, TokenEndpoint tokens, ForwardEndpoint forwarder, RequestRecorder recorder,
    TimeProvider time, ILogger<ClientRequests> logger)
{
    /// <summary>The routing table.</summary>
    private async ValueTask<Decision> DecideAsync(HttpContext context)
    {
        // 1. RequestGate: endpoint table (404) → GET (405) → Metadata: true (400) → caller, held while discovered or set up
        //    (403 / 503) → endpoint allowed for this client (403) → query (400). Yields the typed, canonical request.
        var gated = await gate.CheckAsync(context).ConfigureAwait(false);
        if (gated.Request is not { } request)
        {
            return gated.Refusal!;
        }

        return request.Endpoint.Kind switch
        {
            // 2. TokenEndpoint: token query (400) → identity binding (400 "Identity not found") → TokenCache → UpstreamClient.
            EndpointKind.Token => await tokens.DecideAsync(request, context.RequestAborted).ConfigureAwait(false),
            // 3. ForwardEndpoint: SharedAnswers → UpstreamClient; user data removed for clients without it.
            _ => await forwarder.DecideAsync(request).ConfigureAwait(false),
        };
        // 4. UpstreamClient (both): fair queue per client → IMDS retry classes → first available upstream → breaker → timeout.
    }

    /// <summary>The wrapper: decide, write the answer, record the decision. An unexpected failure is a bare IMDS-style 500.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        Decision decision;
        try
        {
            decision = await DecideAsync(context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            recorder.Record(context, Decision.Failed() with { Reason = "client_gone" }, Stopwatch.GetElapsedTime(started));
            return; // the client went away; nothing to answer
        }
        catch (Exception ex)
        {
            Unhandled(logger, ex.GetType().Name, context.Request.Path);
            decision = Decision.Failed();
        }

        try
        {
            await AnswerWriter.WriteAsync(context, decision.Answer, decision.Endpoint?.Dialect ?? Dialect.Imds, time).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            decision = decision with { Reason = decision.Reason ?? "client_gone" }; // the client left while the answer was written
        }

        recorder.Record(context, decision, Stopwatch.GetElapsedTime(started));
    }

    // Only the exception type: messages can carry upstream bodies, and upstream bodies can carry tokens.
    [LoggerMessage(EventId = 2, Level = LogLevel.Error, EventName = "RequestFailed", Message = "Unhandled {ExceptionType} while handling {Path}")]
    private static partial void Unhandled(ILogger logger, string exceptionType, PathString path);
}

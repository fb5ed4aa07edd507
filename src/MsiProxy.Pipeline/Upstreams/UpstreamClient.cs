using System.Diagnostics;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams.Scheduling;
using Polly;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Registry;
using Polly.Timeout;

namespace MsiProxy.Upstreams;

/// <summary>
/// The one way to the upstream, for token fetches and forwarded requests alike: the resilience pipeline (budget, IMDS
/// retry classes, the upstream limits), then per attempt the first available upstream — so a failover happens between
/// attempts of one request — through that upstream's breaker and attempt timeout. Whatever happens, the caller gets an
/// <see cref="UpstreamResponse"/>: the upstream's own final answer, or the 502/503/504 the proxy shaped for it — the
/// one error mapping of the proxy.
/// </summary>
internal sealed class UpstreamClient
{
    public const string HttpClientName = "msiproxy-upstream";

    /// <summary>Forwarded answers are small JSON documents; anything larger is not IMDS.</summary>
    public const int MaxResponseBytes = 256 * 1024;

    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly UpstreamResilience _resilience;
    private readonly UpstreamSet _upstreams;
    private readonly MsiProxyOptions _options;
    private readonly TimeProvider _time;
    private readonly MsiProxyTelemetry _telemetry;

    public UpstreamClient(IHttpClientFactory httpClients, ResiliencePipelineProvider<string> pipelines, UpstreamResilience resilience,
        UpstreamSet upstreams, IOptions<MsiProxyOptions> options, TimeProvider time, MsiProxyTelemetry telemetry)
    {
        _http = httpClients.CreateClient(HttpClientName);
        _pipeline = pipelines.GetPipeline<HttpResponseMessage>(UpstreamResilience.PipelineName);
        _resilience = resilience;
        _upstreams = upstreams;
        _options = options.Value; // Resilience:* and Health:* build the pipeline at start-up: they do not reload
        _time = time;
        _telemetry = telemetry;
    }

    public async Task<UpstreamResponse> SendAsync(UpstreamRequest request, CancellationToken cancellationToken)
    {
        var resilience = _options.Resilience;
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        _resilience.Start(context, request, request.Background ? resilience.RefreshBudget : resilience.RequestBudget);
        var attempts = 0;
        SelectedUpstream? lastUpstream = null;
        string? lastFailure = null; // how this request's last attempt failed, when one did: "connection" or "timeout"
        using var span = TraceSpans.StartUpstreamCall(request.Background);
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(async (ctx, _) =>
            {
                attempts++;
                var upstream = _upstreams.Pick();
                if (upstream is null)
                {
                    return Outcome.FromException<HttpResponseMessage>(new NoUpstreamException());
                }

                lastUpstream = upstream;
                var attemptContext = ResilienceContextPool.Shared.Get(ctx.CancellationToken);
                try
                {
                    var attempt = await _resilience.ForUpstream(upstream.Address).ExecuteOutcomeAsync(
                        async (inner, state) => await SendAttemptAsync(state.upstream, state.request, state.attempts, inner.CancellationToken)
                            .ConfigureAwait(false),
                        attemptContext, (upstream, request, attempts)).ConfigureAwait(false);
                    lastFailure = attempt.Exception switch
                    {
                        HttpRequestException => "connection",
                        TimeoutRejectedException => "timeout",
                        _ => null,
                    };
                    return attempt;
                }
                finally
                {
                    ResilienceContextPool.Shared.Return(attemptContext);
                }
            }, context, this).ConfigureAwait(false);

            var response = await ToResponseAsync(outcome, lastUpstream?.Address, attempts, lastFailure,
                context.Properties.GetValue(UpstreamResilience.Refusal, null), context.Properties.GetValue(UpstreamResilience.LastAnswer, null))
                .ConfigureAwait(false);
            TraceSpans.EndUpstreamCall(span, response, _resilience.CircuitState);
            return response;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async ValueTask<Outcome<HttpResponseMessage>> SendAttemptAsync(SelectedUpstream upstream, UpstreamRequest request, int attempt,
        CancellationToken cancellationToken)
    {
        using var activity = MsiProxyTelemetry.ActivitySource.StartActivity(TraceSpans.UpstreamAttempt, ActivityKind.Internal);
        activity?.SetTag(TraceSpans.Upstream, upstream.Address);
        activity?.SetTag("msiproxy.attempt", attempt);
        activity?.SetTag(TraceSpans.CircuitState, _resilience.CircuitStateOf(upstream.Address).ToString());
        using var message = BuildMessage(upstream.Address, request);
        var started = _time.GetTimestamp();
        var upstreamTag = new KeyValuePair<string, object?>(TraceSpans.Upstream, upstream.Address);
        _telemetry.UpstreamInFlight.Add(1, upstreamTag);
        try
        {
            var response = await _http.SendAsync(message, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            _upstreams.ReportAnswer(upstream);
            activity?.SetTag("http.response.status_code", (int)response.StatusCode);
            _telemetry.UpstreamDuration.Record(_time.GetElapsedTime(started).TotalSeconds, upstreamTag,
                new KeyValuePair<string, object?>("http.response.status_code", (int)response.StatusCode));
            return Outcome.FromResult(response);
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            // A transport failure or an attempt timeout: the upstream did not answer.
            _upstreams.ReportFailure(upstream);
            activity?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
            _telemetry.UpstreamDuration.Record(_time.GetElapsedTime(started).TotalSeconds, upstreamTag,
                new KeyValuePair<string, object?>("error.type", ex is HttpRequestException ? "connection" : "timeout"));
            if (ex is HttpRequestException)
            {
                return Outcome.FromException<HttpResponseMessage>(ex);
            }

            throw;
        }
        finally
        {
            _telemetry.UpstreamInFlight.Add(-1, upstreamTag);
        }
    }

    /// <summary>
    /// The request on the wire: GET, no body, the proxy's own <c>Metadata: true</c>, Host from the upstream's address,
    /// and the allow-listed client headers. Trace context is added by the handler's propagator, for msiserviceclients only.
    /// </summary>
    internal static HttpRequestMessage BuildMessage(string upstreamAddress, UpstreamRequest request)
    {
        var message = new HttpRequestMessage(HttpMethod.Get, new Uri(upstreamAddress + request.Target, UriKind.Absolute))
        {
            Version = System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        message.Headers.TryAddWithoutValidation("Metadata", "true");
        var headers = request.Headers;
        if (headers.Accept is { } accept)
        {
            message.Headers.TryAddWithoutValidation("Accept", accept);
        }

        if (headers.UserAgent is { } userAgent)
        {
            message.Headers.TryAddWithoutValidation("User-Agent", userAgent);
        }

        if (headers.ClientRequestId is { } clientRequestId)
        {
            message.Headers.TryAddWithoutValidation("x-ms-client-request-id", clientRequestId);
        }

        return message;
    }

    private async Task<UpstreamResponse> ToResponseAsync(Outcome<HttpResponseMessage> outcome, string? upstream, int attempts, string? lastFailure,
        string? refusal, UpstreamResponse? lastAnswer)
    {
        if (outcome.Result is { } response)
        {
            using (response)
            {
                if ((int)response.StatusCode is < 200 or (>= 300 and < 400))
                {
                    // IMDS never redirects; following one, or passing its Location on, would let an upstream send a client anywhere.
                    return Failure(502, "bad_gateway", "The upstream answered with a redirect", "redirect", null);
                }

                return await UpstreamResponse.ReadAsync(response).ConfigureAwait(false) with { Upstream = upstream, Attempts = attempts };
            }
        }

        // A retry the fair queue refused (its budget would run out while it waits): the last real answer beats a 429.
        if (outcome.Exception is RateLimiterRejectedException && lastAnswer is not null)
        {
            return lastAnswer with { Upstream = upstream, Attempts = attempts };
        }

        // A request that itself found the upstream refusing connections (or silent) reports that — 502 (504) — even when
        // its budget ran out in a backoff, or its failures just took the upstream out of service. Only requests that arrive
        // after that get the fast 503 "no upstream".
        var health = _options.Health;
        return (outcome.Exception, lastFailure) switch
        {
            (NoUpstreamException or TimeoutRejectedException or RateLimiterRejectedException, "connection") => Failure(502, "bad_gateway", "The upstream could not be reached", "unreachable", null),
            (NoUpstreamException or RateLimiterRejectedException, "timeout") => Failure(504, "gateway_timeout", "The upstream did not answer in time", "timeout", null),
            (BrokenCircuitException, _) => Failure(503, "service_unavailable", "The upstream is failing; the proxy is not sending requests to it for now",
                "circuit_open", _resilience.CircuitRetryAfter),
            // Every upstream is out of service; when that is because their breakers opened, say so and when to retry.
            (NoUpstreamException, _) when _resilience.CircuitState == CircuitState.Open => Failure(503, "service_unavailable",
                "The upstream is failing; the proxy is not sending requests to it for now", "circuit_open", _resilience.CircuitRetryAfter),
            (NoUpstreamException, _) => Failure(503, "service_unavailable", "No upstream is available", "no_upstream", health.Interval),
            // The fair queue refused this client's attempt: its own queue is full, or its turn would come after its budget.
            (RateLimiterRejectedException rejected, _) when refusal is not "disposed" => Failure(429, "too_many_requests",
                refusal == "queue_full" ? "This client has too many requests waiting for the upstream" : "This client's requests would wait longer than allowed",
                refusal ?? "queue_full", rejected.RetryAfter ?? UpstreamScheduler.MinRetryAfter),
            (RateLimiterRejectedException, _) => Failure(503, "service_unavailable", "The proxy is shutting down", "disposed", TimeSpan.FromSeconds(1)),
            (TimeoutRejectedException or OperationCanceledException, _) => Failure(504, "gateway_timeout", "The upstream did not answer in time", "timeout", null),
            _ => Failure(502, "bad_gateway", "The upstream could not be reached", "unreachable", null),
        };

        UpstreamResponse Failure(int status, string error, string description, string proxyError, TimeSpan? retryAfter) =>
            new(status, Responses.ImdsErrors.Body(error, description), Responses.ImdsErrors.JsonContentType)
            {
                RetryAfter = retryAfter,
                Upstream = upstream,
                Attempts = attempts,
                ProxyError = proxyError,
            };
    }
}

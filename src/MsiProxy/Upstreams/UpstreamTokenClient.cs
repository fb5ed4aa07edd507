using System.Diagnostics;
using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Configuration;
using MsiProxy.Requests;
using MsiProxy.Telemetry;
using Polly;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Registry;
using Polly.Timeout;

namespace MsiProxy.Upstreams;

/// <summary>
/// Fetches a token from the first available upstream through the resilience pipeline. Each attempt picks the
/// upstream afresh, so a failover happens between attempts of one request. Whatever happens, the caller gets an
/// <see cref="UpstreamResponse"/>: the upstream's own final answer, or a 502/503/504 the proxy shaped for it.
/// </summary>
public sealed class UpstreamTokenClient
{
    public const string HttpClientName = "msiproxy-upstream";

    private readonly HttpClient _http;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly UpstreamResilience _resilience;
    private readonly UpstreamSet _upstreams;
    private readonly IOptionsMonitor<MsiProxyOptions> _options;
    private readonly TimeProvider _time;
    private readonly MsiProxyTelemetry _telemetry;

    public UpstreamTokenClient(IHttpClientFactory httpClients, ResiliencePipelineProvider<string> pipelines, UpstreamResilience resilience,
        UpstreamSet upstreams, IOptionsMonitor<MsiProxyOptions> options, TimeProvider time, MsiProxyTelemetry telemetry)
    {
        _http = httpClients.CreateClient(HttpClientName);
        _pipeline = pipelines.GetPipeline<HttpResponseMessage>(UpstreamResilience.PipelineName);
        _resilience = resilience;
        _upstreams = upstreams;
        _options = options;
        _time = time;
        _telemetry = telemetry;
    }

    public async Task<UpstreamResponse> FetchAsync(string pathAndQuery, FetchPurpose purpose, CancellationToken cancellationToken)
    {
        var budget = purpose == FetchPurpose.Request ? _options.CurrentValue.Resilience.RequestBudget : _options.CurrentValue.Resilience.RefreshBudget;
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        _resilience.StartBudget(context, budget);
        var attempts = 0;
        SelectedUpstream? lastUpstream = null;
        string? lastFailure = null; // how this request's last attempt failed, when one did: "connection" or "timeout"
        using var span = TraceSpans.StartFetch(purpose);
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
                        async (inner, state) => await SendAttemptAsync(state.upstream, state.pathAndQuery, state.attempts, inner.CancellationToken)
                            .ConfigureAwait(false),
                        attemptContext, (upstream, pathAndQuery, attempts)).ConfigureAwait(false);
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

            var response = await ToResponseAsync(outcome, lastUpstream?.Address, attempts, lastFailure).ConfigureAwait(false);
            TraceSpans.EndFetch(span, response, _resilience.CircuitState);
            return response;
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private async ValueTask<Outcome<HttpResponseMessage>> SendAttemptAsync(SelectedUpstream upstream, string pathAndQuery, int attempt,
        CancellationToken cancellationToken)
    {
        using var activity = MsiProxyTelemetry.ActivitySource.StartActivity(TraceSpans.UpstreamAttempt, ActivityKind.Internal);
        activity?.SetTag("msiproxy.upstream", upstream.Address);
        activity?.SetTag("msiproxy.attempt", attempt);
        activity?.SetTag("msiproxy.circuit_state", _resilience.CircuitStateOf(upstream.Address).ToString());
        using var request = new HttpRequestMessage(HttpMethod.Get, upstream.Address + pathAndQuery)
        {
            Version = System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        request.Headers.Add("Metadata", "true");
        var started = _time.GetTimestamp();
        var upstreamTag = new KeyValuePair<string, object?>("msiproxy.upstream", upstream.Address);
        _telemetry.UpstreamInFlight.Add(1, upstreamTag);
        try
        {
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
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

    private async Task<UpstreamResponse> ToResponseAsync(Outcome<HttpResponseMessage> outcome, string? upstream, int attempts, string? lastFailure)
    {
        if (outcome.Result is { } response)
        {
            using (response)
            {
                var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                return new UpstreamResponse((int)response.StatusCode, body, response.Content.Headers.ContentType?.ToString())
                {
                    RetryAfter = response.Headers.RetryAfter?.Delta,
                    Upstream = upstream,
                    Attempts = attempts,
                };
            }
        }

        // A request that itself found the upstream refusing connections (or silent) reports that — 502 (504) — even when
        // its budget ran out in a backoff, or its failures just took the upstream out of service. Only requests that arrive
        // after that get the fast 503 "no upstream".
        var health = _options.CurrentValue.Health;
        return (outcome.Exception, lastFailure) switch
        {
            (NoUpstreamException or TimeoutRejectedException, "connection") => Failure(502, "bad_gateway", "The upstream could not be reached", "unreachable", null),
            (NoUpstreamException, "timeout") => Failure(504, "gateway_timeout", "The upstream did not answer in time", "timeout", null),
            (BrokenCircuitException, _) => Failure(503, "service_unavailable", "The upstream is failing; the proxy is not sending requests to it for now",
                "circuit_open", _resilience.CircuitRetryAfter),
            // Every upstream is out of service; when that is because their breakers opened, say so and when to retry.
            (NoUpstreamException, _) when _resilience.CircuitState == CircuitState.Open => Failure(503, "service_unavailable",
                "The upstream is failing; the proxy is not sending requests to it for now", "circuit_open", _resilience.CircuitRetryAfter),
            (NoUpstreamException, _) => Failure(503, "service_unavailable", "No upstream is available", "no_upstream", health.Interval),
            (RateLimiterRejectedException, _) => Failure(503, "service_unavailable", "Too many requests are waiting for the upstream", "queue_full",
                TimeSpan.FromSeconds(1)),
            (TimeoutRejectedException or OperationCanceledException, _) => Failure(504, "gateway_timeout", "The upstream did not answer in time", "timeout", null),
            _ => Failure(502, "bad_gateway", "The upstream could not be reached", "unreachable", null),
        };

        UpstreamResponse Failure(int status, string error, string description, string proxyError, TimeSpan? retryAfter) =>
            new(status, ImdsErrors.Body(error, description), ImdsErrors.JsonContentType)
            {
                RetryAfter = retryAfter,
                Upstream = upstream,
                Attempts = attempts,
                ProxyError = proxyError,
            };
    }
}

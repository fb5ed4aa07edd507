using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams.Scheduling;
using Polly;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Registry;
using Polly.Retry;
using Polly.Timeout;

namespace MsiProxy.Upstreams;

/// <summary>
/// The Polly pipelines every upstream request goes through — token fetches and forwarded requests alike. One shared
/// pipeline keeps the node inside what IMDS allows a VM, fairly, outermost first:
/// total budget → IMDS-aware retry → the fair queue (<see cref="UpstreamScheduler"/>: a queue per client, served
/// round-robin, under 20/s and 5 at once; background work takes only spare capacity);
/// then, per attempt, the pipeline of the upstream it goes to: circuit breaker → attempt timeout. Breakers are per
/// upstream so a failing first upstream cannot block a healthy second one; when one opens, that upstream is taken out
/// of service for the break, and traffic fails over.
/// </summary>
internal sealed class UpstreamResilience
{
    public const string PipelineName = "msiproxy-upstream";

    public static readonly ResiliencePropertyKey<DateTimeOffset> Deadline = new("msiproxy.deadline");
    public static readonly ResiliencePropertyKey<DateTimeOffset> FirstGoneAt = new("msiproxy.first-gone-at");
    public static readonly ResiliencePropertyKey<TimeSpan> NextDelay = new("msiproxy.next-delay");
    public static readonly ResiliencePropertyKey<UpstreamWork> Work = new("msiproxy.work");

    /// <summary>The last real answer of an attempt that is being retried.</summary>
    public static readonly ResiliencePropertyKey<UpstreamResponse?> LastAnswer = new("msiproxy.last-answer");

    /// <summary>True for calls to IMDS's identity endpoints, whose 404 means "updating, retry" rather than "no such key".</summary>
    public static readonly ResiliencePropertyKey<bool> Identity = new("msiproxy.identity-endpoint");

    /// <summary>Why the fair queue refused an attempt (queue_full, over_budget, expired…), for the error the client gets.</summary>
    public static readonly ResiliencePropertyKey<string?> Refusal = new("msiproxy.refusal");

    private readonly ResilienceOptions _options;
    private readonly TimeProvider _time;
    private readonly MsiProxyTelemetry _telemetry;
    private readonly ImdsRetryPolicy _retryPolicy;
    private readonly UpstreamScheduler _scheduler;
    private readonly ResiliencePipelineRegistry<string> _registry;
    private readonly UpstreamSetAccessor _upstreams;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, CircuitBreakerStateProvider> _circuits = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<ResiliencePipeline<HttpResponseMessage>>> _perUpstream =
        new(StringComparer.Ordinal);

    public UpstreamResilience(IOptions<MsiProxyOptions> options, TimeProvider time, MsiProxyTelemetry telemetry,
        ResiliencePipelineRegistry<string> registry, UpstreamSetAccessor upstreams, UpstreamScheduler scheduler)
    {
        _options = options.Value.Resilience;
        _registry = registry;
        _upstreams = upstreams;
        _time = time;
        _telemetry = telemetry;
        _retryPolicy = new ImdsRetryPolicy(_options, Random.Shared.NextDouble);
        _scheduler = scheduler;
    }

    /// <summary>Open when any upstream's breaker is open (half-open when one is probing), else closed.</summary>
    public CircuitState CircuitState =>
        _circuits.Values.Select(c => c.CircuitState).OrderByDescending(Severity).FirstOrDefault(CircuitState.Closed);

    private static int Severity(CircuitState state) => state switch
    {
        CircuitState.Open or CircuitState.Isolated => 2,
        CircuitState.HalfOpen => 1,
        _ => 0,
    };

    /// <summary>Each upstream's breaker, for the metrics.</summary>
    public IEnumerable<KeyValuePair<string, CircuitState>> CircuitStates =>
        _circuits.Select(pair => new KeyValuePair<string, CircuitState>(pair.Key, pair.Value.CircuitState));

    public CircuitState CircuitStateOf(string upstream) =>
        _circuits.TryGetValue(upstream, out var circuit) ? circuit.CircuitState : CircuitState.Closed;

    /// <summary>
    /// The breaker and attempt timeout of one upstream (base URL without trailing slash), built once: the registry may
    /// run its builder twice when two first requests race, and a breaker's state provider can serve only one breaker.
    /// </summary>
    public ResiliencePipeline<HttpResponseMessage> ForUpstream(string upstream) =>
        _perUpstream.GetOrAdd(upstream, static (address, self) => new Lazy<ResiliencePipeline<HttpResponseMessage>>(
            () => self._registry.GetOrAddPipeline<HttpResponseMessage>(PipelineName + ":" + address, (builder, _) => self.ConfigureUpstream(builder, address))),
            this).Value;

    /// <summary>Attempts waiting in the fair queue for an upstream slot.</summary>
    public long QueueLength => _scheduler.GetStatistics().Queued;

    public void Configure(ResiliencePipelineBuilder<HttpResponseMessage> builder)
    {
        builder
            .AddTimeout(new TimeoutStrategyOptions { Name = "budget", TimeoutGenerator = args => ValueTask.FromResult(RemainingBudget(args.Context)) })
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                Name = "imds-retry",
                MaxRetryAttempts = 100,
                ShouldHandle = async args =>
                {
                    var retry = ShouldRetry(args.Outcome, args.AttemptNumber, args.Context);
                    if (retry && args.Outcome.Result is { } answer)
                    {
                        // Polly disposes this answer before the retry; if the retry never gets to run (its budget or
                        // its place in the fair queue ran out), the client is better served by it than by a made-up one.
                        args.Context.Properties.Set(LastAnswer, await UpstreamResponse.ReadAsync(answer).ConfigureAwait(false));
                    }

                    return retry;
                },
                DelayGenerator = args => ValueTask.FromResult<TimeSpan?>(args.Context.Properties.GetValue(NextDelay, TimeSpan.Zero)),
                OnRetry = args =>
                {
                    var reason = ImdsRetryPolicy.Classify((int?)args.Outcome.Result?.StatusCode, args.Outcome.Exception) ?? "unknown";
                    _telemetry.UpstreamRetries.Add(1, new KeyValuePair<string, object?>("reason", reason));
                    Activity.Current?.AddEvent(new ActivityEvent("retry", tags: new ActivityTagsCollection
                    {
                        ["msiproxy.retry.attempt"] = args.AttemptNumber + 1,
                        ["msiproxy.retry.reason"] = reason,
                        ["msiproxy.retry.delay_ms"] = args.RetryDelay.TotalMilliseconds,
                        ["msiproxy.retry.retry_after_ms"] = args.Outcome.Result?.Headers.RetryAfter?.Delta?.TotalMilliseconds,
                        ["msiproxy.circuit_state"] = CircuitState.ToString(),
                    }));
                    return ValueTask.CompletedTask;
                },
            })
            .AddRateLimiter(new RateLimiterStrategyOptions
            {
                // Each attempt (a retry too) waits in its client's queue for a slot under IMDS's limits.
                Name = "fair-queue",
                RateLimiter = args => _scheduler.AcquireAsync(args.Context.Properties.GetValue(Work, default), 1, args.Context.CancellationToken),
                OnRejected = args =>
                {
                    args.Context.Properties.Set(Refusal, args.Lease.TryGetMetadata(UpstreamScheduler.RefusalMetadata, out var reason) ? reason : null);
                    return ValueTask.CompletedTask;
                },
            });
    }

    private void ConfigureUpstream(ResiliencePipelineBuilder<HttpResponseMessage> builder, string upstream)
    {
        var circuit = _circuits.GetOrAdd(upstream, static _ => new CircuitBreakerStateProvider());
        builder
            .AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
            {
                Name = "upstream-breaker",
                FailureRatio = _options.BreakerFailureRatio,
                MinimumThroughput = _options.BreakerMinimumThroughput,
                SamplingDuration = _options.BreakerSamplingDuration,
                BreakDuration = _options.BreakerDuration,
                StateProvider = circuit,
                ShouldHandle = args => ValueTask.FromResult(!IsProbe(args.Context) && args.Outcome switch
                {
                    { Exception: HttpRequestException or TimeoutRejectedException } => true,
                    { Result.StatusCode: HttpStatusCode.RequestTimeout } => true,
                    { Result: { } response } => (int)response.StatusCode >= 500,
                    _ => false,
                }),
                OnOpened = args =>
                {
                    _upstreams.Value?.TakeOutOfService(upstream, args.BreakDuration);
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(new TimeoutStrategyOptions { Name = "attempt", Timeout = _options.AttemptTimeout });
    }

    /// <summary>Health probes report what they see; they neither retry nor count toward a breaker.</summary>
    private static bool IsProbe(ResilienceContext context) =>
        context.GetRequestMessage()?.Options.TryGetValue(ImdsProbingRequestFactory.IsProbe, out _) == true;

    /// <summary>Marks whom a call is for — its queue in the scheduler — and starts its budget.</summary>
    public void Start(ResilienceContext context, UpstreamRequest request, TimeSpan budget)
    {
        var deadline = _time.GetUtcNow() + budget;
        context.Properties.Set(Work, new UpstreamWork(request.Client, request.Priority, deadline));
        context.Properties.Set(Deadline, deadline);
        context.Properties.Set(Identity, request.Target.StartsWith("/metadata/identity/", StringComparison.Ordinal));
    }

    public TimeSpan CircuitRetryAfter => _options.BreakerDuration;

    private TimeSpan RemainingBudget(ResilienceContext context)
    {
        if (!context.Properties.TryGetValue(Deadline, out var deadline))
        {
            return _options.RequestBudget;
        }

        var remaining = deadline - _time.GetUtcNow();
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1);
    }

    private bool ShouldRetry(Outcome<HttpResponseMessage> outcome, int attempt, ResilienceContext context)
    {
        if (IsProbe(context))
        {
            return false;
        }

        var now = _time.GetUtcNow();
        var status = (int?)outcome.Result?.StatusCode;
        DateTimeOffset? firstGone = null;
        if (status == (int)HttpStatusCode.Gone)
        {
            if (!context.Properties.TryGetValue(FirstGoneAt, out var since))
            {
                context.Properties.Set(FirstGoneAt, since = now);
            }

            firstGone = since;
        }

        var retryAfter = outcome.Result?.Headers.RetryAfter?.Delta;
        var deadline = context.Properties.GetValue(Deadline, now + _options.RequestBudget);
        var waiting = context.Properties.GetValue(Work, default).Priority == WorkPriority.Foreground;
        var identity = context.Properties.GetValue(Identity, false);
        var decision = _retryPolicy.Decide(status, outcome.Exception, retryAfter, attempt, now, deadline, firstGone, waiting, identity);
        context.Properties.Set(NextDelay, decision.Delay);
        return decision.Retry;
    }

}

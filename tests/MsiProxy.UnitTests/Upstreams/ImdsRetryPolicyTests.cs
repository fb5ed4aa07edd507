using System.Net.Sockets;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace MsiProxy.UnitTests.Upstreams;

/// <summary>Pure retry decisions: every class IMDS documents, the 410 window, Retry-After and the budget — no clock, no sleep.</summary>
public sealed class ImdsRetryPolicyTests
{
    private static readonly DateTimeOffset Now = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Deadline = Now.AddSeconds(60);

    private readonly ResilienceOptions _options = new()
    {
        BaseDelay = TimeSpan.FromMilliseconds(500),
        MaxDelay = TimeSpan.FromSeconds(10),
        MaxRetryAfter = TimeSpan.FromSeconds(10),
        GoneWindow = TimeSpan.FromSeconds(70),
    };

    private ImdsRetryPolicy Policy(double random = 0.5) => new(_options, () => random);

    [Theory]
    [InlineData(404, "404")]
    [InlineData(408, "408")]
    [InlineData(429, "429")]
    [InlineData(500, "500")]
    [InlineData(502, "502")]
    [InlineData(503, "503")]
    [InlineData(504, "504")]
    public void Documented_statuses_are_retried_with_backoff(int status, string reason)
    {
        var decision = Policy().Decide(status, null, null, 0, Now, Deadline, null, clientWaiting: false);
        Assert.True(decision.Retry);
        Assert.Equal(reason, decision.Reason);
        Assert.InRange(decision.Delay, TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500));
    }

    [Theory]
    [InlineData(400)]
    [InlineData(401)]
    [InlineData(403)]
    [InlineData(405)]
    [InlineData(409)]
    [InlineData(200)]
    public void Design_time_errors_and_successes_are_never_retried(int status)
    {
        Assert.False(Policy().Decide(status, null, null, 0, Now, Deadline, null, clientWaiting: false).Retry);
        Assert.False(Policy().Decide(status, null, TimeSpan.FromSeconds(1), 3, Now, Deadline, null, clientWaiting: false).Retry);
    }

    [Fact]
    public void Connection_failures_and_attempt_timeouts_are_retried_but_the_proxys_own_refusals_are_not()
    {
        Assert.Equal("connection", Policy().Decide(null, new HttpRequestException("refused", new SocketException(111)), null, 0, Now, Deadline, null, clientWaiting: false).Reason);
        Assert.Equal("timeout", Policy().Decide(null, new TimeoutRejectedException(), null, 0, Now, Deadline, null, clientWaiting: false).Reason);
        Assert.True(Policy().Decide(null, new TimeoutRejectedException(), null, 0, Now, Deadline, null, clientWaiting: false).Retry);
        Assert.False(Policy().Decide(null, new BrokenCircuitException(), null, 0, Now, Deadline, null, clientWaiting: false).Retry);
        Assert.False(Policy().Decide(null, new NoUpstreamException(), null, 0, Now, Deadline, null, clientWaiting: false).Retry);
    }

    [Fact]
    public void Status_410_is_retried_within_the_70_second_window_and_not_past_it()
    {
        Assert.True(Policy().Decide(410, null, null, 5, Now, Now.AddSeconds(120), Now.AddSeconds(-69), clientWaiting: false).Retry);
        Assert.True(Policy().Decide(410, null, null, 0, Now, Now.AddSeconds(120), Now, clientWaiting: false).Retry);
        var past = Policy().Decide(410, null, null, 6, Now, Now.AddSeconds(120), Now.AddSeconds(-70), clientWaiting: false);
        Assert.False(past.Retry);
        Assert.Equal("410 window exhausted", past.Reason);
    }

    [Fact]
    public void Retry_after_is_honoured_and_capped()
    {
        var honoured = Policy().Decide(429, null, TimeSpan.FromSeconds(3), 0, Now, Deadline, null, clientWaiting: false);
        Assert.True(honoured.Retry);
        Assert.Equal(TimeSpan.FromSeconds(3), honoured.Delay);

        var capped = Policy().Decide(503, null, TimeSpan.FromSeconds(300), 0, Now, Deadline, null, clientWaiting: false);
        Assert.True(capped.Retry);
        Assert.Equal(_options.MaxRetryAfter, capped.Delay);
    }

    [Fact]
    public void Backoff_grows_exponentially_with_jitter_up_to_the_cap()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(250), Policy(0).Backoff(0));
        Assert.Equal(TimeSpan.FromMilliseconds(500), Policy(1).Backoff(0));
        Assert.Equal(TimeSpan.FromMilliseconds(1000), Policy(0).Backoff(2));
        Assert.Equal(TimeSpan.FromMilliseconds(4000), Policy(1).Backoff(3));
        Assert.Equal(TimeSpan.FromSeconds(10), Policy(1).Backoff(30));
        Assert.Equal(TimeSpan.FromSeconds(5), Policy(0).Backoff(30));
    }

    [Fact]
    public void No_retry_starts_that_would_end_after_the_budget()
    {
        var stop = Policy().Decide(429, null, TimeSpan.FromSeconds(5), 0, Now, Now.AddSeconds(4), null, clientWaiting: false);
        Assert.False(stop.Retry);
        Assert.Equal("budget exhausted", stop.Reason);

        Assert.False(Policy(1).Decide(500, null, null, 3, Now, Now.AddSeconds(3), null, clientWaiting: false).Retry); // 4 s backoff > 3 s left
        Assert.True(Policy(1).Decide(500, null, null, 3, Now, Now.AddSeconds(5), null, clientWaiting: false).Retry);
    }
}

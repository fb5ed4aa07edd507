using Microsoft.Extensions.Time.Testing;
using MsiProxy.Upstreams.Scheduling;
using Polly;
using Polly.RateLimiting;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>The scheduler as Polly's rate-limiter strategy, the way the upstream pipeline uses it.</summary>
public sealed class UpstreamSchedulerPollyTests
{
    private static readonly ResiliencePropertyKey<UpstreamWork> Work = new("test.work");
    private static readonly ResiliencePropertyKey<string> Refusal = new("test.refusal");
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Polly_holds_the_slot_for_the_attempt_and_surfaces_refusals_with_retry_after_and_reason()
    {
        using var scheduler = new UpstreamScheduler(new UpstreamSchedulerOptions(maxConcurrency: 1, maxQueuePerClient: 1), new FakeTimeProvider());
        var pipeline = new ResiliencePipelineBuilder()
            .AddRateLimiter(new RateLimiterStrategyOptions
            {
                RateLimiter = args => scheduler.AcquireAsync(args.Context.Properties.GetValue(Work, default), 1, args.Context.CancellationToken),
                OnRejected = args =>
                {
                    if (args.Lease.TryGetMetadata(UpstreamScheduler.RefusalMetadata, out var reason) && reason is not null)
                    {
                        args.Context.Properties.Set(Refusal, reason);
                    }

                    return default;
                },
            })
            .Build();

        var firstRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Execute(pipeline, "a", async () =>
        {
            firstRunning.SetResult();
            await releaseFirst.Task;
        });
        await firstRunning.Task.WaitAsync(Bound);
        Assert.Equal(1, scheduler.GetStatistics().Running);

        var secondRan = false;
        var second = Execute(pipeline, "a", () =>
        {
            secondRan = true;
            return Task.CompletedTask;
        });
        Assert.Equal(1, scheduler.GetStatistics().QueuedForeground);

        var context = ResilienceContextPool.Shared.Get();
        context.Properties.Set(Work, new UpstreamWork("a", WorkPriority.Foreground, DateTimeOffset.MaxValue));
        var rejected = await Assert.ThrowsAsync<RateLimiterRejectedException>(() =>
            pipeline.ExecuteAsync(_ => ValueTask.CompletedTask, context).AsTask());
        Assert.Equal(TimeSpan.FromSeconds(1), rejected.RetryAfter);
        Assert.Equal("queue_full", context.Properties.GetValue(Refusal, ""));
        ResilienceContextPool.Shared.Return(context);

        // When the first attempt returns, Polly disposes its lease and the waiting one runs.
        releaseFirst.SetResult();
        await Task.WhenAll(first, second).WaitAsync(Bound);
        Assert.True(secondRan);
        var statistics = scheduler.GetStatistics();
        Assert.Equal((0, 0, 2L, 1L), (statistics.Running, statistics.Queued, statistics.Granted, statistics.RefusedQueueFull));
    }

    private static async Task Execute(ResiliencePipeline pipeline, string client, Func<Task> attempt)
    {
        var context = ResilienceContextPool.Shared.Get();
        try
        {
            context.Properties.Set(Work, new UpstreamWork(client, WorkPriority.Foreground, DateTimeOffset.MaxValue));
            await pipeline.ExecuteAsync(async _ => await attempt(), context);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }
}

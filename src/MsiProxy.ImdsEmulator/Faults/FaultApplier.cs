using System.Globalization;
using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Faults;

/// <summary>Carries out a scripted <see cref="FaultRule"/> on a live request.</summary>
internal sealed class FaultApplier(EmulatorState state, ImdsResponseHeaders headers)
{
    /// <returns>True when the fault answered (or killed) the request; false when only latency was added.</returns>
    public async Task<bool> ApplyAsync(HttpContext context, FaultRule rule, bool identityEndpoint)
    {
        // Latency is real wall-clock time even under a fake TimeProvider: it is what the caller experiences.
        if (rule.Delay > TimeSpan.Zero)
        {
            await Task.Delay(rule.Delay, context.RequestAborted).ConfigureAwait(false);
        }

        if (rule.Drop)
        {
            context.Abort();
            return true;
        }

        if (rule.Stall)
        {
            // Ends when the caller gives up or the emulator stops; either way without an answer.
            await Task.WhenAny(Task.Delay(Timeout.InfiniteTimeSpan, context.RequestAborted), state.Stopping).ConfigureAwait(false);
            context.Abort();
            return true;
        }

        if (rule.Status == 0)
        {
            return false;
        }

        if (rule.RetryAfter is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = Math.Ceiling(retryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        }

        await ImdsResponses.WriteAsync(context, headers, rule.Status, rule.Body ?? ImdsResponses.FaultBody(rule.Status, identityEndpoint))
            .ConfigureAwait(false);
        return true;
    }
}

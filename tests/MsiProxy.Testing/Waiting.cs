using System.Diagnostics;
using Xunit;

namespace MsiProxy.Testing;

/// <summary>
/// The one way a test waits for something that will happen: poll the condition until it holds, and fail, naming what
/// was awaited, once the bound has passed. Bounds are generous (the CI machine is loaded); a passing test never waits
/// for them. A condition that throws ends the wait at once (e.g. "the process exited"). Import it with
/// <c>using static MsiProxy.Testing.Waiting;</c>.
/// </summary>
/// <remarks>
/// Not for proving that something did <em>not</em> happen: wait for the event that would have come with it (a later
/// marker, a completed pass) and then assert its absence.
/// </remarks>
public static class Waiting
{
    /// <summary>The bound when a caller names none.</summary>
    public static readonly TimeSpan DefaultBound = TimeSpan.FromSeconds(15);

    // Short and steady: some awaited states are brief (a backlog that builds up, then drains), and a back-off could
    // step over them. Expensive conditions (docker exec, iptables-save) take longer than this themselves.
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);

    /// <param name="what">What is awaited, for the failure message ("the watch starts").</param>
    /// <param name="details">More for the failure message, computed only then (a process's output, the spans seen).</param>
    public static Task Eventually(Func<bool> condition, TimeSpan? within = null, string? what = null, Func<string>? details = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return Eventually(() => Task.FromResult(condition()), within, what, details);
    }

    /// <inheritdoc cref="Eventually(Func{bool}, TimeSpan?, string?, Func{string}?)"/>
    public static async Task Eventually(Func<Task<bool>> condition, TimeSpan? within = null, string? what = null, Func<string>? details = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var bound = within ?? DefaultBound;
        var watch = Stopwatch.StartNew();
        while (!await condition().ConfigureAwait(false))
        {
            if (watch.Elapsed > bound)
            {
                Assert.Fail($"Not within {bound.TotalSeconds:0.###} s: {what ?? "the condition"}" + (details is null ? "" : "\n" + details()));
            }

            await Task.Delay(Interval).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <paramref name="probe"/>'s value once <paramref name="done"/> accepts it (e.g. the log lines, once there are
    /// three); fails like <see cref="Eventually(Func{bool}, TimeSpan?, string?, Func{string}?)"/>.
    /// </summary>
    public static async Task<T> Eventually<T>(Func<T> probe, Func<T, bool> done, TimeSpan? within = null, string? what = null,
        Func<string>? details = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        var value = probe();
        await Eventually(() => done(value = probe()), within, what, details).ConfigureAwait(false);
        return value;
    }

    /// <summary>Whether <paramref name="path"/> answers 2xx now; false while nothing listens or nothing answers yet.</summary>
    public static async Task<bool> AnswersAsync(HttpClient client, string path)
    {
        ArgumentNullException.ThrowIfNull(client);
        try
        {
            using var response = await client.GetAsync(new Uri(path, UriKind.RelativeOrAbsolute)).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false; // not listening yet
        }
        catch (TaskCanceledException)
        {
            return false; // not answering yet (the client's timeout)
        }
    }
}

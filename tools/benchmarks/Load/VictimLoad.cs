using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace MsiProxy.Benchmarks.Load;

/// <summary>
/// Scenario 7, the victim: a quiet client (its own source address) asks for a new token — a resource nobody asked for
/// before — every <c>--interval-ms</c> for <c>--duration</c> seconds, and records each answer's latency and status.
/// With <c>--flood-rate R</c> a neighbour on another source address floods meanwhile: R new-token requests per second,
/// each a unique resource (every one a miss), sent on schedule whether or not earlier ones were answered (open loop,
/// at most <c>--flood-in-flight</c> outstanding). Before anything is sent the tool waits until the emulator has seen no
/// token request for <c>--idle-ms</c> (its rate window is empty: a proxy may still be working off an earlier flood's
/// queue); the flood starts <c>--warmup-ms</c> before the quiet client and stops when the quiet client's last answer
/// is in. The quiet client is open loop too: a slow answer does not delay the next
/// request, so queueing shows in the latencies instead of being hidden by fewer requests.
/// Prints one JSON line: the quiet client's percentiles and failures, the flood's outcome, the emulator's throttled
/// count, and every quiet sample as [ms since the first request, latency ms, status] (status 0 = no answer).
/// </summary>
internal static class VictimLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var target = Arguments.Get(args, "target");
        var counters = Arguments.Get(args, "counters");
        var duration = TimeSpan.FromSeconds(double.Parse(Arguments.Get(args, "duration"), System.Globalization.CultureInfo.InvariantCulture));
        var interval = TimeSpan.FromMilliseconds(Arguments.GetInt(args, "interval-ms", 200));
        var floodRate = Arguments.GetInt(args, "flood-rate", 0);
        var floodInFlight = Arguments.GetInt(args, "flood-in-flight", 256);
        var warmup = TimeSpan.FromMilliseconds(Arguments.GetInt(args, "warmup-ms", 1000));
        var idle = TimeSpan.FromMilliseconds(Arguments.GetInt(args, "idle-ms", 1100));
        var tag = Arguments.Get(args, "tag", Guid.NewGuid().ToString("N")[..8]);
        var quietAddress = IPAddress.Parse(Arguments.Get(args, "quiet-address", "127.0.0.21"));
        var floodAddress = IPAddress.Parse(Arguments.Get(args, "flood-address", "127.0.0.20"));

        using var control = new HttpClient();
        using var quiet = LoopbackCaller.Client(quietAddress);
        using var neighbour = LoopbackCaller.Client(floodAddress);
        await UpstreamIdleAsync(control, counters, idle);
        var throttledBefore = await CounterAsync(control, counters, "throttled");

        using var stopFlood = new CancellationTokenSource();
        var flood = new Flood(neighbour, target, $"victim-{tag}-flood", floodRate, floodInFlight);
        var flooding = floodRate > 0 ? flood.RunAsync(stopFlood.Token) : Task.CompletedTask;
        if (floodRate > 0)
        {
            await Task.Delay(warmup);
        }

        var samples = await QuietClientAsync(quiet, target, $"victim-{tag}-quiet", duration, interval);
        await stopFlood.CancelAsync();
        await flooding;
        var throttledAfter = await CounterAsync(control, counters, "throttled");

        var all = samples.Select(s => s.LatencyMs).Order().ToArray();
        var ok = samples.Where(s => s.Status == 200).Select(s => s.LatencyMs).Order().ToArray();
        var failed = samples.Count(s => s.Status != 200);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            phase = floodRate > 0 ? "flood" : "no_flood",
            interval_ms = interval.TotalMilliseconds,
            flood_rate = floodRate,
            requests = samples.Length,
            failed,
            failed_share = samples.Length == 0 ? 0 : Math.Round((double)failed / samples.Length, 4),
            p50_ms = Percentiles.NearestRank(all, 50),
            p99_ms = Percentiles.NearestRank(all, 99),
            ok_p50_ms = Percentiles.NearestRank(ok, 50),
            ok_p99_ms = Percentiles.NearestRank(ok, 99),
            statuses = Count(samples.Select(s => s.Status)),
            flood_sent = flood.Sent,
            flood_skipped = flood.Skipped,
            flood_statuses = flood.Statuses.OrderBy(p => p.Key).ToDictionary(p => p.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), p => p.Value),
            upstream_throttled = throttledAfter - throttledBefore,
            samples = samples.Select(s => new[] { Math.Round(s.StartMs, 1), Math.Round(s.LatencyMs, 2), s.Status }),
        }));
        return 0;
    }

    private sealed record Sample(double StartMs, double LatencyMs, int Status);

    /// <summary>One request every <paramref name="interval"/>, each on its own task, each a new resource.</summary>
    private static async Task<Sample[]> QuietClientAsync(HttpClient http, string target, string prefix, TimeSpan duration, TimeSpan interval)
    {
        var count = (int)Math.Max(1, duration / interval);
        var clock = Stopwatch.StartNew();
        var requests = new List<Task<Sample>>(count);
        for (var i = 0; i < count; i++)
        {
            var due = interval * i;
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            requests.Add(TimedAsync(http, target, $"{prefix}-{i}", clock));
        }

        return await Task.WhenAll(requests);
    }

    private static async Task<Sample> TimedAsync(HttpClient http, string target, string resource, Stopwatch clock)
    {
        var start = clock.Elapsed;
        var status = await SendAsync(http, target, resource, CancellationToken.None);
        return new Sample(start.TotalMilliseconds, (clock.Elapsed - start).TotalMilliseconds, status);
    }

    /// <summary>A token request for <paramref name="resource"/>; its status, or 0 when no answer came (timeout, reset).</summary>
    private static async Task<int> SendAsync(HttpClient http, string target, string resource, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get,
            $"{target}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://{resource}.example");
        message.Headers.Add("Metadata", "true");
        try
        {
            using var response = await http.SendAsync(message, cancellationToken);
            return (int)response.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return 0;
        }
    }

    /// <summary>The neighbour: <c>rate</c> requests per second on schedule (open loop), each its own resource.</summary>
    private sealed class Flood(HttpClient http, string target, string prefix, int rate, int maxInFlight)
    {
        private readonly ConcurrentDictionary<int, int> _statuses = new();
        private int _inFlight;

        public int Sent { get; private set; }

        /// <summary>Requests due while <c>maxInFlight</c> were outstanding: not sent.</summary>
        public int Skipped { get; private set; }

        /// <summary>Answers by status (0 = none); requests still outstanding when the flood stopped are not counted.</summary>
        public IReadOnlyDictionary<int, int> Statuses => _statuses;

        public async Task RunAsync(CancellationToken stop)
        {
            var clock = Stopwatch.StartNew();
            var outstanding = new List<Task>();
            var due = 0L;
            while (!stop.IsCancellationRequested)
            {
                for (; due < (long)(clock.Elapsed.TotalSeconds * rate); due++)
                {
                    if (Volatile.Read(ref _inFlight) >= maxInFlight)
                    {
                        Skipped++;
                        continue;
                    }

                    Interlocked.Increment(ref _inFlight);
                    outstanding.Add(OneAsync($"{prefix}-{due}", stop));
                    Sent++;
                }

                outstanding.RemoveAll(t => t.IsCompleted);
                try
                {
                    await Task.Delay(5, stop);
                }
                catch (TaskCanceledException)
                {
                    break;
                }
            }

            await Task.WhenAll(outstanding);
        }

        private async Task OneAsync(string resource, CancellationToken stop)
        {
            var status = await SendAsync(http, target, resource, stop);
            Interlocked.Decrement(ref _inFlight);
            if (!stop.IsCancellationRequested)
            {
                _statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            }
        }
    }

    private static Dictionary<string, int> Count(IEnumerable<int> statuses) => statuses.GroupBy(s => s).OrderBy(g => g.Key)
        .ToDictionary(g => g.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), g => g.Count());


    /// <summary>Returns once the emulator's token-request count has not moved for <paramref name="idle"/> (at most 30 s).</summary>
    private static async Task UpstreamIdleAsync(HttpClient control, string countersUrl, TimeSpan idle)
    {
        var giveUp = Stopwatch.StartNew();
        var quietFor = Stopwatch.StartNew();
        var last = await CounterAsync(control, countersUrl, "tokenRequests");
        while (quietFor.Elapsed < idle && giveUp.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
            var now = await CounterAsync(control, countersUrl, "tokenRequests");
            if (now != last)
            {
                (last, quietFor) = (now, Stopwatch.StartNew());
            }
        }
    }

    private static async Task<long> CounterAsync(HttpClient control, string countersUrl, string name)
    {
        using var document = JsonDocument.Parse(await control.GetStringAsync(new Uri(countersUrl)));
        return document.RootElement.GetProperty(name).GetInt64();
    }
}

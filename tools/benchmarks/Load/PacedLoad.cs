using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace MsiProxy.Benchmarks.Load;

/// <summary>
/// Scenario 8, a node's load: cached hits at a steady, light rate — <c>--rate</c> requests per second spread over
/// <c>--connections</c> keep-alive connections for <c>--duration</c> seconds, each connection on its own schedule (a late
/// answer delays only its own connection's next request) — and the CPU the server's processes (<c>--pids</c>) spent
/// meanwhile, from their <c>utime + stime</c>. Why: saturated, a server's per-request cost is amortised over full
/// batches; a node's agent mostly answers a request now and then, where each one pays for waking the server up.
/// Prints one JSON line: requests, errors, CPU µs per request, p50 and p99 latency.
/// </summary>
internal static class PacedLoad
{
    /// <summary>Linux's USER_HZ, the unit of /proc/PID/stat's times: 100 on every architecture .NET runs on.</summary>
    private const double TicksPerSecond = 100;

    public static async Task<int> RunAsync(string[] args)
    {
        var target = new Uri(Arguments.Get(args, "target"));
        var rate = Arguments.GetInt(args, "rate");
        var connections = Arguments.GetInt(args, "connections", 1);
        var duration = TimeSpan.FromSeconds(Arguments.GetInt(args, "duration"));
        var pids = Arguments.Get(args, "pids").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = connections });
        http.DefaultRequestHeaders.Add("Metadata", "true");
        // Every connection opened and warm before the clock starts.
        foreach (var warm in await Task.WhenAll(Enumerable.Range(0, connections).Select(_ => http.GetAsync(target))))
        {
            warm.Dispose();
        }

        var latencies = new List<double>[connections];
        var errors = 0;
        var before = CpuTicks(pids);
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async connection =>
        {
            var mine = latencies[connection] = [];
            // Connection c sends at (c + k·connections) / rate: together, rate requests a second, evenly spaced.
            for (long k = 0; ; k++)
            {
                var due = TimeSpan.FromSeconds((connection + (k * connections)) / (double)rate);
                if (due >= duration)
                {
                    break;
                }

                if (due > clock.Elapsed)
                {
                    await Task.Delay(due - clock.Elapsed);
                }

                var sent = clock.Elapsed;
                using var response = await http.GetAsync(target);
                await response.Content.ReadAsByteArrayAsync();
                mine.Add((clock.Elapsed - sent).TotalMilliseconds);
                if (!response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }));
        var cpu = (CpuTicks(pids) - before) / TicksPerSecond;

        var sorted = latencies.SelectMany(l => l).Order().ToArray();
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            rate,
            connections,
            requests = sorted.Length,
            errors,
            cpu_us_per_request = sorted.Length == 0 ? (double?)null : Math.Round(cpu * 1e6 / sorted.Length, 1),
            p50_ms = Percentiles.NearestRank(sorted, 50),
            p99_ms = Percentiles.NearestRank(sorted, 99),
        }));
        return 0;
    }

    /// <summary>The processes' user and system time so far, in ticks (fields 14 and 15 of /proc/PID/stat).</summary>
    private static long CpuTicks(int[] pids) => pids.Sum(pid =>
    {
        // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    });

}

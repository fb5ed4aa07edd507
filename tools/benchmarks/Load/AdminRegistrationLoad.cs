using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace MsiProxy.Benchmarks.Load;

/// <summary>
/// Scenario scale-admin: registers <c>--count</c> clients through the admin API (<c>PUT /admin/clients/{name}</c>,
/// <c>--concurrency</c> at a time, as the Docker monitor's sink does) and prints, as one JSON line, the total and the
/// milliseconds each successive <c>--step</c> registrations took — flat per-step times mean linear total cost.
/// </summary>
internal static class AdminRegistrationLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var admin = new Uri(Arguments.Get(args, "admin"));
        var key = Arguments.Get(args, "key");
        var count = Arguments.GetInt(args, "count");
        var step = Arguments.GetInt(args, "step", 1000);
        var concurrency = Arguments.GetInt(args, "concurrency", 8);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, MaxConnectionsPerServer = concurrency })
        {
            BaseAddress = admin,
            Timeout = TimeSpan.FromSeconds(100),
        };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        var perStep = new List<double>();
        var total = Stopwatch.StartNew();
        for (var start = 0; start < count; start += step)
        {
            var watch = Stopwatch.StartNew();
            var next = start;
            var end = Math.Min(count, start + step);
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next) - 1) < end)
                {
                    // 10.0.0.0/8 addresses: never a caller here, only entries in the registry.
                    var body = $"{{\"address\":\"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\",\"identities\":[\"*\"]}}";
                    using var content = new StringContent(body, Encoding.UTF8, "application/json");
                    using var response = await http.PutAsync($"/admin/clients/scale-{i}", content);
                    if (!response.IsSuccessStatusCode)
                    {
                        throw new InvalidOperationException($"PUT scale-{i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                    }
                }
            }));
            perStep.Add(Math.Round(watch.Elapsed.TotalMilliseconds, 1));
        }

        Console.WriteLine(JsonSerializer.Serialize(new
        {
            count,
            step,
            total_ms = Math.Round(total.Elapsed.TotalMilliseconds, 1),
            first_step_ms = perStep[0],
            last_step_ms = perStep[^1],
            per_step_ms = perStep,
        }));
        return 0;
    }
}

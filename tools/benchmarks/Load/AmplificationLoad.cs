using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace MsiProxy.Benchmarks.Load;

/// <summary>
/// Scenario 3: N clients (each its own loopback source address, 127.0.0.2, .3, …) each send M token requests over K
/// resources nobody has asked for yet, all starting together. Prints one JSON line with how many of those requests
/// reached the upstream (with --unique: N×M distinct resources, to fill a cache), read from the emulator's control API (<c>GET /emulator/counters</c>) before and after.
/// </summary>
internal static class AmplificationLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var target = Arguments.Get(args, "target");
        var counters = Arguments.Get(args, "counters");
        var clients = Arguments.GetInt(args, "clients");
        var requests = Arguments.GetInt(args, "requests");
        var keys = Arguments.GetInt(args, "keys");
        var unique = args.Contains("--unique"); // every request its own key: fills a cache rather than stampeding it
        var tag = Arguments.Get(args, "tag", Guid.NewGuid().ToString("N")[..8]);
        var first = IPAddress.Parse(Arguments.Get(args, "first-client-address", "127.0.0.2")).GetAddressBytes();

        using var control = new HttpClient();
        var before = await TokenRequestsAsync(control, counters);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var statuses = new int[clients * requests];
        var callers = Enumerable.Range(0, clients).Select(async client =>
        {
            var address = (byte[])first.Clone();
            address[3] = (byte)(address[3] + client);
            using var http = LoopbackCaller.Client(new IPAddress(address));
            await gate.Task;
            for (var i = 0; i < requests; i++)
            {
                var key = unique ? (client * requests) + i : (client + i) % keys;
                using var message = new HttpRequestMessage(HttpMethod.Get,
                    $"{target}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://amplify-{tag}-{key}.example");
                message.Headers.Add("Metadata", "true");
                using var response = await http.SendAsync(message);
                statuses[(client * requests) + i] = (int)response.StatusCode;
            }
        }).ToList();

        var stopwatch = Stopwatch.StartNew();
        gate.SetResult();
        await Task.WhenAll(callers);
        stopwatch.Stop();
        var after = await TokenRequestsAsync(control, counters);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            clients,
            requests_per_client = requests,
            keys,
            ok = statuses.Count(s => s == 200),
            not_ok = statuses.Count(s => s != 200),
            upstream_calls = after - before,
            elapsed_ms = Math.Round(stopwatch.Elapsed.TotalMilliseconds, 1),
        }));
        return 0;
    }

    private static async Task<long> TokenRequestsAsync(HttpClient control, string countersUrl)
    {
        using var document = JsonDocument.Parse(await control.GetStringAsync(new Uri(countersUrl)));
        return document.RootElement.GetProperty("tokenRequests").GetInt64();
    }
}

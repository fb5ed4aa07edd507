using System.Collections.Concurrent;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.DashboardRender;

/// <summary>
/// A real proxy in front of the loopback IMDS emulator, and a load in four phases so every panel has something to
/// show: normal traffic (hits, some misses, instance requests, strangers), upstream faults (503s → retries → the
/// circuit opens), a client over its token rate (throttling), then recovery.
/// </summary>
internal sealed class LoadRun : IAsyncDisposable
{
    private static readonly string[] Resources =
        ["https://management.azure.com/", "https://vault.azure.net", "https://storage.azure.com/", "https://database.windows.net/", "https://graph.microsoft.com/"];

    private readonly ImdsEmulatorServer _emulator;
    private readonly ProxyHost _proxy;
    private readonly ConcurrentDictionary<string, int> _statuses = new();

    private LoadRun(ImdsEmulatorServer emulator, ProxyHost proxy)
    {
        _emulator = emulator;
        _proxy = proxy;
    }

    public Uri MetricsAddress => _proxy.ManagementAddress;

    public string Summary => $"{_statuses.Values.Sum()} requests: " +
        string.Join(", ", _statuses.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key}×{s.Value}")) +
        $"; upstream saw {_emulator.State.Counters.TokenRequests} token requests";

    public static async Task<LoadRun> StartAsync()
    {
        var emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { TokenLifetime = TimeSpan.FromHours(1) });
        var settings = ProxyHost.Settings(emulator.BaseAddress, ("web", "127.0.0.2", []), ("worker", "127.0.0.4", []), ("batch", "127.0.0.5", []));
        settings["MsiProxy:Resilience:BaseDelay"] = "00:00:00.050";
        settings["MsiProxy:Resilience:MaxDelay"] = "00:00:00.500";
        settings["MsiProxy:Resilience:RequestBudget"] = "00:00:03";
        settings["MsiProxy:Resilience:BreakerDuration"] = "00:00:05";
        var proxy = await ProxyHost.StartAsync(settings);
        return new LoadRun(emulator, proxy);
    }

    public async Task<LoadWindow> DriveAsync(TimeSpan duration)
    {
        var start = DateTimeOffset.UtcNow;
        var phases = new List<(DateTimeOffset, string)> { (start, "normal") };
        using var stop = new CancellationTokenSource(duration);
        var web = _proxy.CreateClient("127.0.0.2");
        var worker = _proxy.CreateClient("127.0.0.4");
        var batch = _proxy.CreateClient("127.0.0.5");
        var stranger = _proxy.CreateClient("127.0.0.3");
        var load = Enumerable.Range(0, 3).Select(i => NormalTrafficAsync(i % 2 == 0 ? web : worker, stranger, stop.Token)).ToList();

        await Task.Delay(duration * 0.35);
        phases.Add((DateTimeOffset.UtcNow, "upstream 503s"));
        _emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 503, Times = 100_000 });
        using (var faults = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            var misses = MissesAsync(worker, perSecond: 8, faults.Token);
            await Task.Delay(duration * 0.2);
            faults.Cancel();
            await misses;
        }

        _emulator.State.Faults.Clear();
        phases.Add((DateTimeOffset.UtcNow, "throttling"));
        using (var burst = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            var batchMisses = MissesAsync(batch, perSecond: 20, burst.Token);
            await Task.Delay(duration * 0.2);
            burst.Cancel();
            await batchMisses;
        }

        phases.Add((DateTimeOffset.UtcNow, "recovered"));
        await Task.WhenAll(load);
        foreach (var client in new[] { web, worker, batch, stranger })
        {
            client.Dispose();
        }

        return new LoadWindow(start, DateTimeOffset.UtcNow, phases);
    }

    /// <summary>About 25 requests a second: mostly cached tokens, some instance metadata, a few bypasses and strangers.</summary>
    private async Task NormalTrafficAsync(HttpClient app, HttpClient stranger, CancellationToken stop)
    {
        var random = new Random(app.GetHashCode());
        while (!stop.IsCancellationRequested)
        {
            var roll = random.Next(100);
            var resource = Resources[random.Next(Resources.Length)];
            var (client, uri) = roll switch
            {
                < 75 => (app, TokenUri(resource)),
                < 87 => (app, "/metadata/instance?api-version=2021-02-01"),
                < 95 => (app, TokenUri(resource) + "&bypass_cache=true"),
                _ => (stranger, TokenUri(resource)),
            };
            await SendAsync(client, uri);
            await Delay(TimeSpan.FromMilliseconds(40), stop);
        }
    }

    /// <summary>Tokens for resources never asked before: every one is a miss that must go upstream.</summary>
    private async Task MissesAsync(HttpClient client, int perSecond, CancellationToken stop)
    {
        var pending = new List<Task>();
        while (!stop.IsCancellationRequested)
        {
            pending.Add(SendAsync(client, TokenUri($"https://app{Guid.NewGuid():N}.example/")));
            await Delay(TimeSpan.FromSeconds(1.0 / perSecond), stop);
        }

        await Task.WhenAll(pending);
    }

    private async Task SendAsync(HttpClient client, string uri)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri) { Headers = { { "Metadata", "true" } } };
        try
        {
            using var response = await client.SendAsync(request, CancellationToken.None);
            _statuses.AddOrUpdate(((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
        }
        catch (HttpRequestException)
        {
            _statuses.AddOrUpdate("transport error", 1, (_, n) => n + 1);
        }

    }

    private static string TokenUri(string resource) =>
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + WebUtility.UrlEncode(resource);

    private static async Task Delay(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop);
        }
        catch (OperationCanceledException)
        {
            // The phase is over.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _emulator.DisposeAsync();
    }
}

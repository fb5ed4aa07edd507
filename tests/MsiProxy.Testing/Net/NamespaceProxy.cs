using System.Text.Json;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Testing.Net;

/// <summary>
/// The real MsiProxy program (<c>dotnet MsiProxy.dll</c>, a child process) inside a <see cref="TransparentNamespace"/>,
/// listening on http://169.254.169.254:80 there — where clients that call IMDS unchanged arrive — with its upstream
/// set explicitly to an emulator inside the same namespace. Its console (one compact-JSON event a line) is kept, so
/// tests can count the requests that reached it.
/// </summary>
public sealed class NamespaceProxy : IAsyncDisposable
{
    /// <summary>The management listener inside the namespace (a fresh namespace has every port free).</summary>
    public static readonly Uri ManagementAddress = new("http://127.0.0.1:8081");

    private readonly ChildProcess _process;

    private NamespaceProxy(ChildProcess process, TransparentNamespace ns)
    {
        _process = process;
        Namespace = ns;
    }

    public TransparentNamespace Namespace { get; }

    /// <summary>Everything the program printed so far.</summary>
    public string Output => _process.Output;

    /// <summary>The RequestCompleted events (one per client request the proxy answered), oldest first.</summary>
    public IReadOnlyList<JsonElement> RequestLines => Events("RequestCompleted");

    /// <summary>
    /// Starts the proxy and waits until /readyz says an upstream answered.
    /// </summary>
    /// <param name="upstream">The emulator inside the namespace (loopback; the fixture guard checks).</param>
    /// <param name="clients">Registered callers; a client in the namespace calling 169.254.169.254 is 169.254.169.254.</param>
    /// <param name="settings">More configuration, e.g. ["MsiProxy:RequireMetadataHeader"] = "false".</param>
    public static async Task<NamespaceProxy> StartAsync(TransparentNamespace ns, Uri upstream,
        IReadOnlyList<(string Name, string Address, string[] Identities)> clients, IReadOnlyDictionary<string, string>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(clients);
        var upstreamText = upstream.ToString().TrimEnd('/');
        UpstreamGuard.Check([upstreamText]);

        var configuration = new Dictionary<string, string>
        {
            ["urls"] = $"http://{TransparentNamespace.ImdsAddress}:80",
            ["MsiProxy:Management:Urls"] = ManagementAddress.ToString().TrimEnd('/'),
            ["MsiProxy:Upstreams:0"] = upstreamText,
            ["MsiProxy:Health:Interval"] = "00:00:01",
            ["MsiProxy:Health:Timeout"] = "00:00:05",
        };
        for (var i = 0; i < clients.Count; i++)
        {
            configuration[$"MsiProxy:Clients:{i}:Name"] = clients[i].Name;
            configuration[$"MsiProxy:Clients:{i}:Address"] = clients[i].Address;
            for (var j = 0; j < clients[i].Identities.Length; j++)
            {
                configuration[$"MsiProxy:Clients:{i}:Identities:{j}"] = clients[i].Identities[j];
            }
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            if (key.StartsWith("MsiProxy:Upstreams:", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException("Pass the upstream as the upstream argument, where the guard checks it.", nameof(settings));
            }

            configuration[key] = value;
        }

        // The supervising wrapper stops the proxy (SIGTERM) when its stdin closes: on dispose, or if the test process dies.
        var process = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"), .. configuration.Select(p => $"--{p.Key}={p.Value}")],
            ns.SupervisedWrapper, keepInputOpen: true);
        var proxy = new NamespaceProxy(process, ns);
        try
        {
            using var management = ns.CreateHttpClient(ManagementAddress, TimeSpan.FromSeconds(2));
            await Waiting.Eventually(async () =>
            {
                process.ThrowIfExited();
                return await Waiting.AnswersAsync(management, "/readyz").ConfigureAwait(false);
            }, TimeSpan.FromSeconds(30), $"the proxy in {ns} is ready", () => process.Output).ConfigureAwait(false);
            return proxy;
        }
        catch
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The RequestCompleted events, once there are at least <paramref name="count"/> (a line is written just after the answer).</summary>
    public Task<IReadOnlyList<JsonElement>> RequestLinesAsync(int count, TimeSpan? within = null) =>
        Waiting.Eventually(() => RequestLines, lines => lines.Count >= count, within, $"{count} RequestCompleted line(s)", () => Output);

    /// <summary>Compact-JSON events whose EventId name is <paramref name="name"/>, oldest first.</summary>
    public IReadOnlyList<JsonElement> Events(string name)
    {
        var events = new List<JsonElement>();
        foreach (var line in _process.StandardOutputLines.Where(l => l.StartsWith('{')))
        {
            using var json = JsonDocument.Parse(line);
            if (json.RootElement.TryGetProperty("EventId", out var id) && id.TryGetProperty("Name", out var eventName)
                && eventName.GetString() == name)
            {
                events.Add(json.RootElement.Clone());
            }
        }

        return events;
    }

    public async ValueTask DisposeAsync()
    {
        // A graceful stop first (the wrapper sends SIGTERM); the kill is for a proxy that hangs.
        if (!_process.HasExited)
        {
            _process.CloseInput();
            await _process.WaitForExitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }

        await _process.DisposeAsync().ConfigureAwait(false);
    }
}

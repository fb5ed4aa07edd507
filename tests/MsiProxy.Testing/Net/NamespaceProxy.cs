using System.Diagnostics;
using System.Text.Json;
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

    private static readonly string[] ScrubbedVariables =
    [
        "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "OTEL_EXPORTER_OTLP_ENDPOINT",
    ];

    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly Lock _gate = new();

    private NamespaceProxy(Process process, TransparentNamespace ns)
    {
        _process = process;
        Namespace = ns;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public TransparentNamespace Namespace { get; }

    /// <summary>Everything the program printed so far.</summary>
    public string Output
    {
        get
        {
            lock (_gate)
            {
                return string.Join('\n', _lines);
            }
        }
    }

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

        var start = new ProcessStartInfo(ns.SupervisedWrapper[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var arg in ns.SupervisedWrapper.Skip(1))
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("dotnet");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll"));
        foreach (var (key, value) in configuration)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        foreach (var name in ScrubbedVariables)
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the proxy.");
        var proxy = new NamespaceProxy(process, ns);
        try
        {
            await proxy.WaitUntilReadyAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            return proxy;
        }
        catch
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The RequestCompleted events, once there are at least <paramref name="count"/> (a line is written just after the answer).</summary>
    public async Task<IReadOnlyList<JsonElement>> RequestLinesAsync(int count, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var lines = RequestLines;
            if (lines.Count >= count || DateTime.UtcNow > deadline)
            {
                return lines;
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>Compact-JSON events whose EventId name is <paramref name="name"/>, oldest first.</summary>
    public IReadOnlyList<JsonElement> Events(string name)
    {
        List<string> lines;
        lock (_gate)
        {
            lines = [.. _lines];
        }

        var events = new List<JsonElement>();
        foreach (var line in lines.Where(l => l.StartsWith('{')))
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
        if (!_process.HasExited)
        {
            // Closing stdin makes the wrapper send SIGTERM (a graceful stop); the kill is for a proxy that hangs.
            _process.StandardInput.Close();
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        _process.Dispose();
    }

    private async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        using var management = Namespace.CreateHttpClient(ManagementAddress, TimeSpan.FromSeconds(2));
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The proxy exited ({_process.ExitCode}):\n{Output}");
            }

            try
            {
                using var ready = await management.GetAsync(new Uri("/readyz", UriKind.Relative)).ConfigureAwait(false);
                if (ready.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            catch (TaskCanceledException)
            {
                // not answering yet
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new TimeoutException($"The proxy in {Namespace} was not ready within {timeout}:\n{Output}");
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _lines.Add(line);
        }
    }
}

using System.Formats.Tar;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Docker.DotNet;
using Docker.DotNet.Models;
using MsiProxy.Clients;

namespace MsiProxy.Docker;

/// <summary><see cref="IContainerEngine"/> over the Docker Engine API (Docker.DotNet.Enhanced): unix socket or named pipe.</summary>
internal sealed class DockerEngine : IContainerEngine, IDisposable
{
    private readonly DockerClient _client;

    public DockerEngine(string endpoint)
    {
        _client = new DockerClientBuilder().WithEndpoint(new Uri(endpoint)).Build();
    }

    public async Task<string> GetOperatingSystemAsync(CancellationToken cancellationToken)
    {
        var info = await _client.System.GetSystemInfoAsync(cancellationToken).ConfigureAwait(false);
        return string.IsNullOrEmpty(info.OSType) ? "linux" : info.OSType.ToLowerInvariant();
    }

    public async Task<IReadOnlyList<ContainerInfo>> ListRunningAsync(CancellationToken cancellationToken)
    {
        var listed = await _client.Containers.ListContainersAsync(new ContainersListParameters { All = false }, cancellationToken)
            .ConfigureAwait(false);
        var result = new List<ContainerInfo>(listed.Count);
        foreach (var container in listed)
        {
            // The list has no PID (the Linux wiring needs it); one inspect per container keeps that simple.
            if (await InspectAsync(container.ID, cancellationToken).ConfigureAwait(false) is { } info)
            {
                result.Add(info);
            }
        }

        return result;
    }

    public async Task<IReadOnlyList<NetworkInfo>> ListNetworksAsync(CancellationToken cancellationToken)
    {
        var listed = await _client.Networks.ListNetworksAsync(new NetworksListParameters(), cancellationToken).ConfigureAwait(false);
        return [.. listed.Select(ToNetworkInfo)];
    }

    /// <summary>Docker names a bridge network's interface br-&lt;first 12 of the id&gt; unless its options name it.</summary>
    public static NetworkInfo ToNetworkInfo(NetworkResponse network)
    {
        ArgumentNullException.ThrowIfNull(network);
        string? bridge = null;
        if (network.Driver == "bridge")
        {
            bridge = network.Options?.TryGetValue("com.docker.network.bridge.name", out var named) == true && !string.IsNullOrWhiteSpace(named)
                ? named : "br-" + network.ID[..Math.Min(12, network.ID.Length)];
        }

        var configs = network.IPAM?.Config ?? [];
        return new NetworkInfo(network.ID, network.Name, bridge,
            [.. configs.Select(c => AddressRange.TryParse(c.Subnet, out var subnet) ? subnet : null).OfType<AddressRange>()],
            [.. configs.Select(c => IPAddress.TryParse(c.Gateway, out var gateway) ? gateway : null).OfType<IPAddress>()]);
    }

    public async Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken)
    {
        ContainerInspectResponse inspected;
        try
        {
            inspected = await _client.Containers.InspectContainerAsync(id, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }

        if (inspected.State is not { Running: true })
        {
            return null;
        }

        var networks = new Dictionary<string, IPAddress>(StringComparer.Ordinal);
        foreach (var (name, endpoint) in inspected.NetworkSettings?.Networks ?? new Dictionary<string, EndpointSettings>())
        {
            if (IPAddress.TryParse(endpoint.IPAddress, out var address))
            {
                networks[name] = address;
            }
        }

        return new ContainerInfo(inspected.ID, inspected.Name.TrimStart('/'),
            new Dictionary<string, string>(inspected.Config?.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal),
            networks, (int)inspected.State.Pid)
        {
            IdentityHeader = ContainerInfo.IdentityHeaderIn(inspected.Config?.Env),
        };
    }

    public async IAsyncEnumerable<ContainerEvent> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateUnbounded<ContainerEvent>(new UnboundedChannelOptions { SingleReader = true });
        var parameters = new ContainerEventsParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["type"] = new Dictionary<string, bool> { ["container"] = true, ["network"] = true },
            },
        };
        var progress = new SynchronousProgress(message =>
        {
            // Network events name the container (connect/disconnect) in an attribute, or none (create/destroy);
            // container events name it in the actor id.
            var id = message.Type == "network"
                ? message.Actor?.Attributes?.TryGetValue("container", out var container) == true ? container : ""
                : message.Actor?.ID ?? "";
            channel.Writer.TryWrite(new ContainerEvent(message.Type ?? "", message.Action ?? "", id));
        });
        var stream = _client.System.MonitorEventsAsync(parameters, progress, cancellationToken);
        _ = stream.ContinueWith(t => channel.Writer.TryComplete(t.Exception?.GetBaseException() ?? new IOException("The Docker event stream ended.")),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        await foreach (var item in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return item;
        }
    }

    public async Task<ExecResult> ExecAsync(string id, string? user, IReadOnlyList<string> command, CancellationToken cancellationToken)
    {
        var created = await _client.Exec.CreateContainerExecAsync(id, new ContainerExecCreateParameters
        {
            User = user ?? "",
            AttachStdout = true,
            AttachStderr = true,
            Cmd = [.. command],
        }, cancellationToken).ConfigureAwait(false);
        using var stream = await _client.Exec.StartContainerExecAsync(created.ID, new ContainerExecStartParameters(), cancellationToken)
            .ConfigureAwait(false);
        var (stdout, stderr) = await stream.ReadOutputToEndAsync(cancellationToken).ConfigureAwait(false);
        var inspected = await _client.Exec.InspectContainerExecAsync(created.ID, cancellationToken).ConfigureAwait(false);
        return new ExecResult(inspected.ExitCode ?? -1, stdout, stderr);
    }

    public async Task CopyDirectoryAsync(string id, string sourceDirectory, string containerDirectory, CancellationToken cancellationToken)
    {
        // The archive API extracts into an existing directory, so the tar carries the folder itself and lands in its parent.
        var separator = containerDirectory.Contains('\\', StringComparison.Ordinal) ? '\\' : '/';
        var trimmed = containerDirectory.TrimEnd(separator);
        var cut = trimmed.LastIndexOf(separator);
        var parent = trimmed[..(cut + 1)];
        var folder = trimmed[(cut + 1)..];

        using var archive = new MemoryStream();
        await using (var tar = new TarWriter(archive, TarEntryFormat.Pax, leaveOpen: true))
        {
            await tar.WriteEntryAsync(new PaxTarEntry(TarEntryType.Directory, folder + "/"), cancellationToken).ConfigureAwait(false);
            foreach (var file in Directory.GetFiles(sourceDirectory).Order(StringComparer.Ordinal))
            {
                await tar.WriteEntryAsync(file, folder + "/" + Path.GetFileName(file), cancellationToken).ConfigureAwait(false);
            }
        }

        archive.Position = 0;
        await _client.Containers.ExtractArchiveToContainerAsync(id, new CopyToContainerParameters { Path = parent }, archive, cancellationToken)
            .ConfigureAwait(false);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Progress&lt;T&gt; posts to the thread pool and can reorder events; this calls back in order.</summary>
    private sealed class SynchronousProgress(Action<Message> report) : IProgress<Message>
    {
        public void Report(Message value) => report(value);
    }
}

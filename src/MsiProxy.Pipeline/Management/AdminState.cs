using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

/// <summary>
/// Keeps what the admin API changed — its client registrations (source <c>admin</c>) and the upstream list it set —
/// in the state file, so a restart (an update, a crash, a node reboot) does not leave those clients with 403 until
/// someone registers them again. Loaded at start-up, after the configured clients and before the listeners open (hosted
/// services start before the server); a file that cannot be used stops start-up and is left untouched.
/// <para>
/// Every change is written when it happens, and an admin call answers only once its change is on disk. Writes are
/// serialised and each writes the registry as it is at that moment, so concurrent calls cannot lose an update: the last
/// write holds the last state. An admin registration displaced by another source (a container or pod taking its
/// address) is removed from the file too, so a restart never gives its identities to the address's new owner.
/// </para>
/// </summary>
internal sealed partial class AdminState(ClientRegistry registry, UpstreamSet upstreams, IOptions<MsiProxyOptions> options, ILogger<AdminState> logger)
    : IHostedService, IDisposable
{
    private readonly string? _path = string.IsNullOrWhiteSpace(options.Value.StateFile) ? null : options.Value.StateFile;
    private readonly IReadOnlyList<string> _configuredUpstreams = options.Value.EffectiveUpstreams;
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly Lock _upstreamsGate = new();
    private StoredUpstreams? _upstreams;
    private long _changes;
    private long _saved;

    /// <summary>The state file, or null when nothing is kept.</summary>
    public string? Path => _path;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_path is null)
        {
            return Task.CompletedTask;
        }

        var document = StateFile.Read(_path);
        if (document is not null)
        {
            Restore(_path, document);
        }

        registry.Registered += OnRegistryChanged;
        registry.Deregistered += OnRegistryChanged;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        registry.Registered -= OnRegistryChanged;
        registry.Deregistered -= OnRegistryChanged;
        if (await SaveAsync().ConfigureAwait(false) is { } problem)
        {
            LogNotSaved(problem);
        }
    }

    /// <summary>Replaces the upstream list (refused whole when invalid, see <see cref="UpstreamSet.Set"/>) and keeps it.</summary>
    public void SetUpstreams(IReadOnlyList<string> list)
    {
        lock (_upstreamsGate) // the list in effect and the list kept change together, whatever the order of concurrent calls
        {
            upstreams.Set(list);
            _upstreams = new StoredUpstreams([.. upstreams.Current], [.. _configuredUpstreams]);
            Interlocked.Increment(ref _changes);
        }
    }

    /// <summary>
    /// Writes the state unless a write since the last change already did. Returns null when the file holds every change
    /// made before the call (or nothing is kept), else why it could not be written — the change is in effect regardless.
    /// </summary>
    public async Task<string?> SaveAsync()
    {
        if (_path is null)
        {
            return null;
        }

        var wanted = Interlocked.Read(ref _changes);
        await _write.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_saved >= wanted)
            {
                return null;
            }

            var covered = Interlocked.Read(ref _changes); // read before the capture: the capture holds at least these changes
            await StateFile.WriteAsync(_path, Capture()).ConfigureAwait(false);
            _saved = covered;
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"the change is in effect but could not be saved to {_path} ({ex.Message}); it will not survive a restart";
        }
        finally
        {
            _write.Release();
        }
    }

    private StateDocument Capture()
    {
        StoredUpstreams? kept;
        lock (_upstreamsGate)
        {
            kept = _upstreams;
        }

        return new StateDocument
        {
            Version = StateFile.FormatVersion,
            SavedAt = DateTimeOffset.UtcNow,
            Clients =
            [
                .. registry.All.Where(r => r.Source == RegistrationSources.Admin).OrderBy(r => r.Name, StringComparer.Ordinal)
                    .Select(r => new StoredClient(r.Name, r.Address.ToString(), [.. r.Identities.Select(i => i.ToString())], [.. r.Prefetch],
                        [.. r.Endpoints], r.WorkloadId, r.Ready, r.RegisteredAt, r.Proof.Name(), r.IdentityHeader?.Hex)),
            ],
            Upstreams = kept,
        };
    }

    /// <summary>Checks the whole file first (by the admin API's own rules), then applies it: a bad entry changes nothing.</summary>
    private void Restore(string path, StateDocument document)
    {
        var clients = new List<ClientRegistration>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (stored, index) in (document.Clients ?? []).Select((c, i) => (c, i)))
        {
            var body = new AdminApi.ClientBody(stored.Address, stored.Identities, stored.Prefetch, stored.WorkloadId, stored.Ready, stored.Endpoints,
                Proof: stored.Proof, IdentityHeaderSha256: stored.IdentityHeaderSha256);
            if (!AdminApi.TryCreateRegistration(stored.Name, body, stored.RegisteredAt, out var registration, out var error))
            {
                throw StateFile.Refused(path, $"has a client that cannot be registered: clients[{index}].{error}");
            }

            if (!names.Add(registration.Name))
            {
                throw StateFile.Refused(path, $"has a client that cannot be registered: clients[{index}].name: '{registration.Name}' is there twice");
            }

            clients.Add(registration);
        }

        var restoreUpstreams = false;
        if (document.Upstreams is { List: { } list } kept)
        {
            if (UpstreamSet.Validate(list).FirstOrDefault() is { } error)
            {
                throw StateFile.Refused(path, $"has an upstream list that cannot be used: {AdminApi.UpstreamField(error, "upstreams.list")}");
            }

            restoreUpstreams = (kept.Configured ?? []).SequenceEqual(_configuredUpstreams, StringComparer.Ordinal);
            if (!restoreUpstreams)
            {
                LogUpstreamsSuperseded(path, string.Join(", ", list), string.Join(", ", _configuredUpstreams));
            }
        }

        registry.RegisterAll(clients);
        if (restoreUpstreams)
        {
            SetUpstreams(document.Upstreams!.List!);
            _saved = Interlocked.Read(ref _changes); // what was just read is what the file holds
        }

        LogRestored(path, clients.Count, restoreUpstreams ? string.Join(", ", upstreams.Current) : "as configured");
    }

    private void OnRegistryChanged(ClientRegistration registration)
    {
        if (registration.Source != RegistrationSources.Admin)
        {
            return;
        }

        Interlocked.Increment(ref _changes);
        _ = SaveInBackgroundAsync(); // an admin call waits for its own save; a displacement by another source has no caller
    }

    private async Task SaveInBackgroundAsync()
    {
        try
        {
            if (await SaveAsync().ConfigureAwait(false) is { } problem)
            {
                LogNotSaved(problem);
            }
        }
        catch (ObjectDisposedException)
        {
            // The host is gone; StopAsync wrote the last state before it went.
        }
    }

    public void Dispose() => _write.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "State file {Path}: {Clients} admin registration(s) restored; upstreams {Upstreams}")]
    private partial void LogRestored(string path, int clients, string upstreams);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "State file {Path} holds upstreams {Kept} set through the admin API, but MsiProxy:Upstreams changed since; using the configured {Configured}")]
    private partial void LogUpstreamsSuperseded(string path, string kept, string configured);

    [LoggerMessage(Level = LogLevel.Error, Message = "Admin state not saved: {Problem}")]
    private partial void LogNotSaved(string problem);
}

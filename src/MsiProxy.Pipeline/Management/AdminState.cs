using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

/// <summary>
/// Appends lines to the journal and flushes them to disk; returns its new length. <see cref="StateFile.Append"/> unless
/// a test registers its own, to hold one append in flight and see that the changes made meanwhile share the next.
/// </summary>
internal delegate long JournalAppender(string path, IReadOnlyList<JournalEntry> entries, bool created);

/// <summary>
/// Keeps what the admin API changed — its client registrations (source <c>admin</c>) and the upstream list it set —
/// in the state file, so a restart (an update, a crash, a node reboot) does not leave those clients with 403 until
/// someone registers them again. Loaded at start-up, after the configured clients and before the listeners open (hosted
/// services start before the server); a file that cannot be used stops start-up and is left untouched.
/// <para>
/// An admin call answers only once its change is on disk: a line in the journal (<see cref="StateFile"/>), flushed.
/// Changes are marked dirty by name; a save writes each dirty name as the registry holds it at that moment (a put, or a
/// delete when it is no longer an admin client), so concurrent calls cannot lose an update and the order of registry
/// events does not matter. Saves are serialised, and a save writes every change made before it in one append and one
/// fsync: callers that arrive while a save is running share the next one (group commit). An admin registration
/// displaced by another source (a container or pod taking its address) is removed from the state too, so a restart
/// never gives its identities to the address's new owner.
/// </para>
/// <para>
/// When the journal has more lines than max(1024, admin clients), a compaction rewrites the snapshot in the background:
/// the capture and the O(n) write happen outside the save lock, which it takes only to note where the journal stood and,
/// at the end, to rename the snapshot and drop the journal lines it covers (O(lines written meanwhile)). Every compaction
/// follows at least as many changes as there are clients, so the total work stays linear in the number of changes.
/// </para>
/// </summary>
internal sealed partial class AdminState(ClientRegistry registry, UpstreamSet upstreams, IOptions<MsiProxyOptions> options, ILogger<AdminState> logger,
    JournalAppender? appendJournal = null)
    : IHostedService, IDisposable
{
    private const int MinimumCompactionLines = 1024;

    private readonly string? _path = string.IsNullOrWhiteSpace(options.Value.StateFile) ? null : options.Value.StateFile;
    private readonly IReadOnlyList<string> _configuredUpstreams = options.Value.EffectiveUpstreams;
    private readonly JournalAppender _appendJournal = appendJournal ?? StateFile.Append;
    private readonly SemaphoreSlim _write = new(1, 1);
    private readonly Lock _upstreamsGate = new();
    private readonly Lock _dirtyGate = new();
    private HashSet<string> _dirtyNames = new(StringComparer.Ordinal);
    private bool _dirtyUpstreams;
    private StoredUpstreams? _upstreams;
    private long _changes;

    // Under _write:
    private long _saved;
    private readonly HashSet<string> _stored = new(StringComparer.Ordinal); // the admin clients the state on disk holds
    private bool _needsSnapshot = true; // no journal may be appended yet: no version-2 snapshot, a torn tail, or a failed write
    private bool _journalExists;
    private int _journalLines;
    private long _journalLength;
    private int _snapshots; // counts snapshot writes: a compaction that sees another one happen meanwhile throws its own away
    private Task _compaction = Task.CompletedTask;

    private int _appends;

    /// <summary>The state file, or null when nothing is kept.</summary>
    public string? Path => _path;

    /// <summary>Journal appends (each one fsync) since start: fewer than the changes when concurrent calls share them.</summary>
    public int JournalAppends => Volatile.Read(ref _appends);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_path is null)
        {
            return Task.CompletedTask;
        }

        if (StateFile.Read(_path) is { } stored)
        {
            Restore(stored);
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

        await _compaction.ConfigureAwait(false); // never throws: it logs its own failure
    }

    /// <summary>Replaces the upstream list (refused whole when invalid, see <see cref="UpstreamSet.Set"/>) and keeps it.</summary>
    public void SetUpstreams(IReadOnlyList<string> list)
    {
        lock (_upstreamsGate) // the list in effect and the list kept change together, whatever the order of concurrent calls
        {
            upstreams.Set(list);
            _upstreams = new StoredUpstreams([.. upstreams.Current], [.. _configuredUpstreams]);
        }

        lock (_dirtyGate)
        {
            _dirtyUpstreams = true;
            _changes++;
        }
    }

    /// <summary>
    /// Writes every change made before the call unless a save since then already did. Returns null when the state on
    /// disk holds them all (or nothing is kept), else why it could not be written — the change is in effect regardless.
    /// </summary>
    public async Task<string?> SaveAsync()
    {
        if (_path is null)
        {
            return null;
        }

        long wanted;
        lock (_dirtyGate)
        {
            wanted = _changes;
        }

        await _write.WaitAsync().ConfigureAwait(false);
        HashSet<string> names;
        bool withUpstreams;
        long covered;
        lock (_dirtyGate)
        {
            if (_saved >= wanted)
            {
                _write.Release();
                return null;
            }

            // Everything counted in `covered` is marked dirty: a change marks first, then counts, under this lock.
            (names, withUpstreams, covered) = (_dirtyNames, _dirtyUpstreams, _changes);
            (_dirtyNames, _dirtyUpstreams) = (new(StringComparer.Ordinal), false);
        }

        try
        {
            if (_needsSnapshot)
            {
                await WriteSnapshotAsync().ConfigureAwait(false);
            }
            else
            {
                AppendChanges(names, withUpstreams);
            }

            _saved = covered;
            StartCompactionIfDue();
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Not on disk: the next save writes them again, as a whole snapshot (a failed append may have left half a line).
            _needsSnapshot = true;
            lock (_dirtyGate)
            {
                _dirtyNames.UnionWith(names);
                _dirtyUpstreams |= withUpstreams;
            }

            return $"the change is in effect but could not be saved to {_path} ({ex.Message}); it will not survive a restart";
        }
        finally
        {
            _write.Release();
        }
    }

    /// <summary>Under _write: one line per dirty name (as the registry holds it now) and the upstreams, one fsync.</summary>
    private void AppendChanges(HashSet<string> names, bool withUpstreams)
    {
        var entries = new List<JournalEntry>(names.Count + 1);
        foreach (var name in names)
        {
            entries.Add(registry.Get(name) is { Source: RegistrationSources.Admin } r ? new JournalEntry(Put: Store(r)) : new JournalEntry(Delete: name));
        }

        if (withUpstreams)
        {
            lock (_upstreamsGate)
            {
                entries.Add(new JournalEntry(Upstreams: _upstreams));
            }
        }

        if (entries.Count == 0)
        {
            return;
        }

        _journalLength = _appendJournal(_path!, entries, created: !_journalExists);
        _journalExists = true;
        _journalLines += entries.Count;
        Interlocked.Increment(ref _appends);
        foreach (var entry in entries)
        {
            if (entry.Put is { } put)
            {
                _stored.Add(put.Name!);
            }
            else if (entry.Delete is { } name)
            {
                _stored.Remove(name);
            }
        }
    }

    /// <summary>
    /// Under _write, with no journal to append to (the first save, after a version-1 file, a torn tail or a failed
    /// write): the whole state as a snapshot, then no journal. O(n), but only in those cases.
    /// </summary>
    private async Task WriteSnapshotAsync()
    {
        var document = Capture();
        StateFile.Commit(await StateFile.WriteTemporaryAsync(_path!, document).ConfigureAwait(false), _path!);
        _snapshots++;
        StateFile.DeleteJournal(_path!);
        (_journalExists, _journalLines, _journalLength, _needsSnapshot) = (false, 0, 0, false);
        _stored.Clear();
        _stored.UnionWith(document.Clients!.Select(c => c.Name!));
    }

    /// <summary>Under _write.</summary>
    private void StartCompactionIfDue()
    {
        if (_compaction.IsCompleted && _journalLines > Math.Max(MinimumCompactionLines, _stored.Count))
        {
            var (from, lines, generation) = (_journalLength, _journalLines, _snapshots);
            _compaction = Task.Run(() => CompactAsync(from, lines, generation));
        }
    }

    /// <summary>
    /// The journal up to <paramref name="from"/> (flushed before the capture below, so the capture holds all of it)
    /// goes into a new snapshot. The capture and the write run outside the save lock; admin calls keep appending.
    /// </summary>
    private async Task CompactAsync(long from, int lines, int generation)
    {
        string? temporary = null;
        try
        {
            temporary = await StateFile.WriteTemporaryAsync(_path!, Capture(), ".compact.tmp").ConfigureAwait(false);
            await _write.WaitAsync().ConfigureAwait(false);
            try
            {
                // A snapshot written since (after a failed write) is newer than this one, and its journal starts elsewhere.
                if (_snapshots != generation || _needsSnapshot)
                {
                    return;
                }

                StateFile.Commit(temporary, _path!);
                temporary = null;
                _snapshots++;
                StateFile.DropJournalBefore(_path!, from); // a crash before this line replays lines the snapshot holds: harmless
                (_journalLines, _journalLength) = (_journalLines - lines, _journalLength - from);
            }
            finally
            {
                _write.Release();
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            // The journal is still whole: nothing is lost, the next save that finds it too long tries again.
            LogNotCompacted(_path!, ex.Message);
        }
        finally
        {
            if (temporary is not null)
            {
                try
                {
                    File.Delete(temporary);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Left for the next compaction to overwrite.
                }
            }
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
            Clients = [.. registry.All.Where(r => r.Source == RegistrationSources.Admin).OrderBy(r => r.Name, StringComparer.Ordinal).Select(Store)],
            Upstreams = kept,
        };
    }

    private static StoredClient Store(ClientRegistration r) =>
        new(r.Name, r.Address.ToString(), [.. r.Identities.Select(i => i.ToString())], [.. r.Prefetch], [.. r.Endpoints], r.WorkloadId, r.Ready,
            r.RegisteredAt, r.Proof.Name(), r.IdentityHeader?.Hex);

    /// <summary>Checks the whole state first (by the admin API's own rules), then applies it: a bad entry changes nothing.</summary>
    private void Restore(StoredState stored)
    {
        var path = stored.Path;
        var (current, keptUpstreams) = stored.Current();
        var clients = new List<ClientRegistration>();
        foreach (var (client, where) in current)
        {
            var body = new AdminApi.ClientBody(client.Address, client.Identities, client.Prefetch, client.WorkloadId, client.Ready, client.Endpoints,
                Proof: client.Proof, IdentityHeaderSha256: client.IdentityHeaderSha256);
            if (!AdminApi.TryCreateRegistration(client.Name, body, client.RegisteredAt, out var registration, out var error))
            {
                throw StateFile.Refused(path, $"has a client that cannot be registered: {where}.{error}");
            }

            clients.Add(registration);
        }

        var restoreUpstreams = false;
        if (keptUpstreams is { List: { } list } kept)
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

        if (stored.TornBytes > 0)
        {
            LogTornLine(StateFile.JournalPath(path), stored.TornBytes, stored.Journal.Count);
        }

        registry.RegisterAll(clients);
        if (restoreUpstreams)
        {
            lock (_upstreamsGate)
            {
                upstreams.Set(keptUpstreams!.List!);
                _upstreams = new StoredUpstreams([.. upstreams.Current], [.. _configuredUpstreams]);
            }
        }

        // What was just read is what the files hold: appends go on after it, unless the snapshot must be rewritten first.
        _stored.UnionWith(clients.Select(c => c.Name));
        _journalExists = stored.Journal.Count > 0 || stored.TornBytes > 0;
        (_journalLines, _journalLength) = (stored.Journal.Count, stored.JournalLength);
        _needsSnapshot = stored.Snapshot?.Version != StateFile.FormatVersion || stored.TornBytes > 0;
        LogRestored(path, clients.Count, stored.Journal.Count, restoreUpstreams ? string.Join(", ", upstreams.Current) : "as configured");
    }

    private void OnRegistryChanged(ClientRegistration registration)
    {
        if (registration.Source != RegistrationSources.Admin)
        {
            return;
        }

        lock (_dirtyGate)
        {
            _dirtyNames.Add(registration.Name);
            _changes++;
        }

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

    [LoggerMessage(Level = LogLevel.Information,
        Message = "State file {Path}: {Clients} admin registration(s) restored ({Lines} journal line(s) after the snapshot); upstreams {Upstreams}")]
    private partial void LogRestored(string path, int clients, int lines, string upstreams);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "State journal {Journal}: ignored a torn last line ({Bytes} bytes after line {Lines}), a write cut off by a crash before it was acknowledged; the state is rewritten at the next change")]
    private partial void LogTornLine(string journal, long bytes, int lines);

    [LoggerMessage(Level = LogLevel.Warning, Message = "State file {Path} not compacted ({Problem}); the journal is whole and grows until the next attempt")]
    private partial void LogNotCompacted(string path, string problem);

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "State file {Path} holds upstreams {Kept} set through the admin API, but MsiProxy:Upstreams changed since; using the configured {Configured}")]
    private partial void LogUpstreamsSuperseded(string path, string kept, string configured);

    [LoggerMessage(Level = LogLevel.Error, Message = "Admin state not saved: {Problem}")]
    private partial void LogNotSaved(string problem);
}

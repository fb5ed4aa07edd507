using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using MsiProxy.Configuration;

namespace MsiProxy.Management;

/// <summary>
/// What the state file holds: the clients registered through the admin API and the upstream list it set. Nothing
/// secret: names, addresses, identity selectors (client ids, resource ids), resources, workload ids — and, should the
/// admin API ever carry a credential, only its hash belongs here.
/// </summary>
internal sealed record StateDocument
{
    public int Version { get; init; }
    public DateTimeOffset SavedAt { get; init; }
    public List<StoredClient>? Clients { get; init; }
    public StoredUpstreams? Upstreams { get; init; }
}

/// <summary>A client as the admin API registered it (the fields of its PUT body, and when).</summary>
/// <param name="IdentityHeaderSha256">The digest of the client's identity header (never the secret), as the admin API took it.</param>
internal sealed record StoredClient(string? Name, string? Address, List<string>? Identities, List<string>? Prefetch, List<string>? Endpoints,
    string? WorkloadId, bool Ready, DateTimeOffset RegisteredAt, string? Proof = null, string? IdentityHeaderSha256 = null);

/// <param name="List">The upstreams the admin API set.</param>
/// <param name="Configured">The configured list it replaced: a different one at start-up means the operator changed the
/// configuration since, and the newer intent wins.</param>
internal sealed record StoredUpstreams(List<string>? List, List<string>? Configured);

/// <summary>One change in the journal: exactly one of its fields is set.</summary>
/// <param name="Put">A client registered or replaced through the admin API, as it stood when the line was written.</param>
/// <param name="Delete">The name of an admin client that is gone (deleted, or displaced by another source).</param>
/// <param name="Upstreams">The upstream list the admin API set.</param>
internal sealed record JournalEntry(StoredClient? Put = null, string? Delete = null, StoredUpstreams? Upstreams = null);

/// <summary>What is on disk: the snapshot (null before the first write) and the journal lines after it, in order.</summary>
/// <param name="JournalLength">The bytes of the journal up to its last complete line: where the next append belongs.</param>
/// <param name="TornBytes">The bytes after the last complete line (a write cut off by a crash), ignored; 0 when none.</param>
internal sealed record StoredState(string Path, StateDocument? Snapshot, IReadOnlyList<(int Line, JournalEntry Entry)> Journal, long JournalLength, long TornBytes)
{
    /// <summary>
    /// The state a restart has: the snapshot's clients, then each journal line applied in order, by name. Every entry
    /// keeps where it came from (<c>clients[3]</c>, <c>journal line 7: put</c>) for the error that names it.
    /// </summary>
    /// <exception cref="ConfigurationException">The snapshot names a client twice.</exception>
    public (IReadOnlyList<(StoredClient Client, string Where)> Clients, StoredUpstreams? Upstreams) Current()
    {
        var clients = new Dictionary<string, (StoredClient, string)>(StringComparer.Ordinal);
        foreach (var (stored, index) in (Snapshot?.Clients ?? []).Select((c, i) => (c, i)))
        {
            if (!clients.TryAdd(stored.Name ?? "", (stored, $"clients[{index}]")))
            {
                throw StateFile.Refused(Path, $"has a client that cannot be registered: clients[{index}].name: '{stored.Name}' is there twice");
            }
        }

        var upstreams = Snapshot?.Upstreams;
        foreach (var (line, entry) in Journal)
        {
            if (entry.Put is { } put)
            {
                clients[put.Name ?? ""] = (put, $"journal line {line}: put");
            }
            else if (entry.Delete is { } name)
            {
                clients.Remove(name);
            }
            else
            {
                upstreams = entry.Upstreams;
            }
        }

        return ([.. clients.Values.OrderBy(c => c.Item1.Name, StringComparer.Ordinal)], upstreams);
    }
}

/// <summary>
/// Reads and writes the state file (<c>MsiProxy:StateFile</c>): a snapshot (<c>state.json</c>) and a journal next to it
/// (<c>state.json.journal</c>, one JSON line per change). A change costs one line and one fsync instead of a rewrite of
/// every client (issue 17: 10,000 registrations took 58 s that way); the snapshot is rewritten only when the journal has
/// outgrown it, so the total work stays linear.
/// <para>
/// A snapshot write replaces the file atomically — a temporary file in the same folder, flushed to disk, renamed over
/// the old one, the folder flushed too on Linux — so a crash or power cut leaves the old snapshot or the new one, never
/// half of either. A journal append is flushed to disk before the change is acknowledged; a crash can cut off only the
/// last line, which was never acknowledged and is ignored on read. Journal lines only ever set a client, remove one or
/// set the upstreams, each whole, so applying a line twice (a snapshot that already holds it) changes nothing: a
/// journal may outlive the snapshot that covers its start, and a crash between the two steps of a compaction is harmless.
/// </para>
/// <para>
/// Anything else that cannot be read or understood — the snapshot, or a journal line before the last — stops start-up
/// (exit code 2) and is left exactly as it is, for the operator to look at.
/// </para>
/// </summary>
internal static class StateFile
{
    /// <summary>
    /// 2 since the journal: a proxy that knows no journal refuses the pair (exit 2) instead of reading the snapshot
    /// without the changes after it. Version 1 (a snapshot alone, written before the journal) is still read.
    /// </summary>
    public const int FormatVersion = 2;

    public const string JournalSuffix = ".journal";

    private static readonly JsonTypeInfo<StateDocument> Json = (JsonTypeInfo<StateDocument>)new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        TypeInfoResolver = ManagementJson.Default,
    }.GetTypeInfo(typeof(StateDocument));

    private static readonly JsonTypeInfo<JournalEntry> JournalJson = (JsonTypeInfo<JournalEntry>)new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        TypeInfoResolver = ManagementJson.Default,
    }.GetTypeInfo(typeof(JournalEntry));

    public static string JournalPath(string path) => path + JournalSuffix;

    /// <summary>The snapshot and journal at <paramref name="path"/>, or null when there is neither (the first start).</summary>
    /// <exception cref="ConfigurationException">Either exists but cannot be read or understood, or the journal has no snapshot.</exception>
    public static StoredState? Read(string path)
    {
        var snapshot = ReadSnapshot(path);
        var journal = JournalPath(path);
        var bytes = ReadBytes(journal, path);
        if (bytes is null)
        {
            return snapshot is null ? null : new StoredState(path, snapshot, [], 0, 0);
        }

        if (snapshot is null)
        {
            // Every journal starts after a snapshot; alone it is a partial state (the snapshot moved aside, say).
            throw JournalRefused(path, "exists without its snapshot");
        }

        var entries = new List<(int, JournalEntry)>();
        var start = 0;
        var line = 0;
        for (var end = Array.IndexOf(bytes, (byte)'\n'); end >= 0; start = end + 1, end = Array.IndexOf(bytes, (byte)'\n', start))
        {
            line++;
            entries.Add((line, ParseLine(path, bytes.AsSpan(start, end - start), line)));
        }

        return new StoredState(path, snapshot, entries, start, bytes.Length - start);
    }

    private static JournalEntry ParseLine(string path, ReadOnlySpan<byte> text, int line)
    {
        JournalEntry? entry;
        try
        {
            entry = JsonSerializer.Deserialize(text, JournalJson);
        }
        catch (JsonException ex)
        {
            throw JournalRefused(path, $"line {line} is not valid JSON (position {ex.BytePositionInLine + 1}), and it is not the last line");
        }

        var set = entry is null ? 0 : (entry.Put is null ? 0 : 1) + (entry.Delete is null ? 0 : 1) + (entry.Upstreams is null ? 0 : 1);
        return set == 1 ? entry! : throw JournalRefused(path, $"line {line} is not a change (put, delete or upstreams, exactly one)");
    }

    private static StateDocument? ReadSnapshot(string path)
    {
        if (ReadBytes(path, path) is not { } bytes)
        {
            return null;
        }

        StateDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(bytes, Json);
        }
        catch (JsonException ex)
        {
            throw Refused(path, $"is not a state file: not valid JSON at line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}");
        }

        if (document is null)
        {
            throw Refused(path, "is not a state file: it holds JSON null");
        }

        if (document.Version is not (1 or FormatVersion))
        {
            throw Refused(path, $"has format version {document.Version}; this proxy reads versions 1 and {FormatVersion}");
        }

        return document;
    }

    private static byte[]? ReadBytes(string file, string path)
    {
        try
        {
            return File.ReadAllBytes(file);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw file == path ? Refused(path, $"cannot be read ({ex.Message})") : JournalRefused(path, $"cannot be read ({ex.Message})");
        }
    }

    /// <summary>The error that stops start-up: what is wrong with the file, and what the operator can do.</summary>
    public static ConfigurationException Refused(string path, string why) => new(
        $"MsiProxy:StateFile = '{path}' {why}. The proxy does not start and leaves the file as it is: move it aside "
        + $"(mv '{path}' '{path}.bad') to start without the saved registrations, or put back a good copy.");

    private static ConfigurationException JournalRefused(string path, string why)
    {
        var journal = JournalPath(path);
        return new ConfigurationException(
            $"MsiProxy:StateFile = '{path}': its journal '{journal}' {why}. The proxy does not start and leaves both files as they are: "
            + $"move both aside (mv '{path}' '{path}.bad'; mv '{journal}' '{journal}.bad') to start without the saved registrations, or put back good copies.");
    }

    /// <summary>A snapshot in a temporary file next to <paramref name="path"/>, on disk; <see cref="Commit"/> makes it the state.</summary>
    public static async Task<string> WriteTemporaryAsync(string path, StateDocument document, string suffix = ".tmp")
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temporary = full + suffix; // one proxy per state file, and each writer its own suffix: one name each is enough

        // Never cancelled half-way: the change it records is already in effect.
        await using (var stream = new FileStream(temporary, NewFile(FileMode.Create)))
        {
            await JsonSerializer.SerializeAsync(stream, document, Json).ConfigureAwait(false);
            await stream.FlushAsync().ConfigureAwait(false);
            stream.Flush(flushToDisk: true); // fsync: the content is on disk before the rename makes it the state
        }

        return temporary;
    }

    /// <summary>Renames a temporary file over <paramref name="target"/> and makes the rename durable.</summary>
    public static void Commit(string temporary, string target)
    {
        var full = Path.GetFullPath(target);
        File.Move(temporary, full, overwrite: true); // rename(2): atomic replace; MoveFileEx(REPLACE_EXISTING) on Windows
        SyncDirectory(Path.GetDirectoryName(full)!);
    }

    public static async Task WriteAsync(string path, StateDocument document) => Commit(await WriteTemporaryAsync(path, document).ConfigureAwait(false), path);

    /// <summary>
    /// Appends changes to the journal as complete lines, in one write, and flushes them to disk before returning. The
    /// file is opened for each append (one open per group commit, cheap next to the fsync), so a journal removed or
    /// made unreachable underneath the proxy fails the append instead of writing to a file nobody will read.
    /// </summary>
    /// <returns>The journal's length after the append.</returns>
    public static long Append(string path, IReadOnlyList<JournalEntry> entries, bool created)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            foreach (var entry in entries)
            {
                JsonSerializer.Serialize(writer, entry, JournalJson);
                writer.Flush();
                writer.Reset();
                buffer.Write("\n"u8);
            }
        }

        var journal = JournalPath(path);
        long length;
        using (var stream = new FileStream(journal, NewFile(FileMode.Append)))
        {
            stream.Write(buffer.WrittenSpan);
            stream.Flush(flushToDisk: true);
            length = stream.Position;
        }

        if (created)
        {
            SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(journal))!); // a new file is a change of its folder too
        }

        return length;
    }

    /// <summary>
    /// Keeps only the journal from byte <paramref name="from"/> on (what came before is in the snapshot just written):
    /// the rest is copied to a temporary file, flushed and renamed over the journal. O(lines kept), not O(clients).
    /// </summary>
    public static void DropJournalBefore(string path, long from)
    {
        var journal = JournalPath(path);
        var temporary = Path.GetFullPath(journal) + ".tmp";
        using (var source = new FileStream(journal, FileMode.Open, FileAccess.Read, FileShare.Read))
        using (var target = new FileStream(temporary, NewFile(FileMode.Create)))
        {
            source.Seek(from, SeekOrigin.Begin);
            source.CopyTo(target);
            target.Flush(flushToDisk: true);
        }

        Commit(temporary, journal);
    }

    /// <summary>Removes the journal after a snapshot that holds all of it; durable before it returns.</summary>
    public static void DeleteJournal(string path)
    {
        var journal = Path.GetFullPath(JournalPath(path));
        if (File.Exists(journal))
        {
            File.Delete(journal);
            SyncDirectory(Path.GetDirectoryName(journal)!);
        }
    }

    private static FileStreamOptions NewFile(FileMode mode)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return options;
    }

    /// <summary>
    /// fsync on the folder, so the rename itself survives a power cut (the file's new name is a change of the folder).
    /// Best effort: a folder that cannot be opened (some filesystems) leaves the rename to the next writeback.
    /// </summary>
    private static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            return;
        }

        _ = Fsync(fd);
        _ = Close(fd);
    }

#pragma warning disable CA5392, SYSLIB1054 // libc by name; a plain DllImport needs no unsafe code
    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);
#pragma warning restore CA5392, SYSLIB1054
}

using System.Runtime.InteropServices;
using System.Text.Json;
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

/// <summary>
/// Reads and writes the state file (<c>MsiProxy:StateFile</c>). A write replaces the file atomically — a temporary
/// file in the same folder, flushed to disk, renamed over the old one, the folder flushed too on Linux — so a crash or
/// power cut leaves the old file or the new one, never half of either. A file that cannot be read or understood stops
/// start-up (exit code 2) and is left exactly as it is, for the operator to look at.
/// </summary>
internal static class StateFile
{
    public const int FormatVersion = 1;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>The document at <paramref name="path"/>, or null when there is no file yet (the first start).</summary>
    /// <exception cref="ConfigurationException">The file exists but cannot be read, is not valid JSON, or is another format version.</exception>
    public static StateDocument? Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw Refused(path, $"cannot be read ({ex.Message})");
        }

        StateDocument? document;
        try
        {
            document = JsonSerializer.Deserialize<StateDocument>(bytes, Json);
        }
        catch (JsonException ex)
        {
            throw Refused(path, $"is not a state file: not valid JSON at line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}");
        }

        if (document is null)
        {
            throw Refused(path, "is not a state file: it holds JSON null");
        }

        if (document.Version != FormatVersion)
        {
            throw Refused(path, $"has format version {document.Version}; this proxy reads version {FormatVersion}");
        }

        return document;
    }

    /// <summary>The error that stops start-up: what is wrong with the file, and what the operator can do.</summary>
    public static ConfigurationException Refused(string path, string why) => new(
        $"MsiProxy:StateFile = '{path}' {why}. The proxy does not start and leaves the file as it is: move it aside "
        + $"(mv '{path}' '{path}.bad') to start without the saved registrations, or put back a good copy.");

    public static async Task WriteAsync(string path, StateDocument document)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temporary = full + ".tmp"; // one proxy per state file: its writes are serialised, so one name is enough
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        // Never cancelled half-way: the change it records is already in effect.
        await using (var stream = new FileStream(temporary, options))
        {
            await JsonSerializer.SerializeAsync(stream, document, Json).ConfigureAwait(false);
            await stream.FlushAsync().ConfigureAwait(false);
            stream.Flush(flushToDisk: true); // fsync: the content is on disk before the rename makes it the state
        }

        File.Move(temporary, full, overwrite: true); // rename(2): atomic replace; MoveFileEx(REPLACE_EXISTING) on Windows
        if (OperatingSystem.IsLinux())
        {
            SyncDirectory(directory);
        }
    }

    /// <summary>
    /// fsync on the folder, so the rename itself survives a power cut (the file's new name is a change of the folder).
    /// Best effort: a folder that cannot be opened (some filesystems) leaves the rename to the next writeback.
    /// </summary>
    private static void SyncDirectory(string directory)
    {
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

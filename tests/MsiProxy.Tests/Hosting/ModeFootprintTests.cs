using System.Net;
using System.Text.RegularExpressions;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// What the real program (<c>dotnet MsiProxy.dll</c>, serving a token from an emulator on loopback) carries that its
/// mode never uses: its memory map (<c>/proc/PID/maps</c>) shows neither Docker's client library nor the YAML reader of
/// Kubernetes discovery when neither discovery is configured, and none of what YARP's unused route services loaded; it writes nothing to its
/// home; and what was removed of those services leaves every registration constructible. A library loaded anyway costs
/// every proxy its mapped code, types and statics.
/// </summary>
[Collection(Serial.Name)]
public sealed partial class ModeFootprintTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task Without_discovery_configured_the_Docker_and_YAML_libraries_are_not_loaded()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/PID/maps");
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartProgramAsync(emulator, home: null);

        var loaded = LoadedAssemblies(await File.ReadAllTextAsync($"/proc/{proxy.Program.Id}/maps"));
        // The map is read right: the pipeline that served the token is in it.
        Assert.Contains("MsiProxy.Pipeline.dll", loaded);
        Assert.Contains("Yarp.ReverseProxy.dll", loaded);
        Assert.DoesNotContain(loaded, name => name.StartsWith("Docker.DotNet", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(loaded, name => name.StartsWith("YamlDotNet", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// YARP registers data protection for its session-affinity cookie, which the proxy never sets; its hosted service
    /// used to load a key ring at every start and, on the first, write an unencrypted key to <c>$HOME/.aspnet</c>. The
    /// management endpoints, which are built on their first request now rather than at start-up, still answer, and
    /// their handlers are compiled (the Request Delegate Generator) rather than built from expression trees, and the
    /// log levels are read without Serilog's settings reader.
    /// </summary>
    [SkippableFact]
    public async Task No_key_ring_or_expression_trees_are_loaded_nothing_is_written_and_the_management_endpoints_answer()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/PID/maps");
        var home = Directory.CreateTempSubdirectory("msiproxy-home-");
        try
        {
            await using var emulator = await ImdsEmulatorServer.StartAsync();
            await using var proxy = await StartProgramAsync(emulator, home.FullName);
            using var management = LoopbackCaller.Create("127.0.0.1", proxy.Management);

            using var alive = await management.GetAsync("/healthz");
            using var ready = await management.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Contains("\"upstream\"", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            var loaded = LoadedAssemblies(await File.ReadAllTextAsync($"/proc/{proxy.Program.Id}/maps"));
            Assert.Contains("MsiProxy.Pipeline.dll", loaded);
            Assert.DoesNotContain("System.Private.Xml.dll", loaded); // the key ring's XML
            // The first routed request built every endpoint, the admin API's too: compiled handlers need no expression trees.
            Assert.DoesNotContain("System.Linq.Expressions.dll", loaded);
            // Log levels are read by LogLevels: Serilog's settings reader, which finds every setting by reflection, is not loaded.
            Assert.DoesNotContain("Serilog.Settings.Configuration.dll", loaded);
            Assert.DoesNotContain("Microsoft.Extensions.DependencyModel.dll", loaded);
            Assert.Empty(home.EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Select(f => f.FullName));
        }
        finally
        {
            home.Delete(recursive: true);
        }
    }

    /// <summary>
    /// OpenSSL (libssl and libcrypto, ~3.5 MB resident) is loaded by the first cryptographic call. Serving tokens over
    /// plain HTTP needs none: YARP's unused data protection makes its key on first use, and a cached token is hashed
    /// when a client first names a revoked one (<c>token_sha256_to_refresh</c>) — which then loads it.
    /// </summary>
    [SkippableFact]
    public async Task OpenSSL_is_not_loaded_until_a_client_names_a_revoked_token()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/PID/maps");
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartProgramAsync(emulator, home: null);
        Assert.Empty(await OpenSslLibrariesAsync(proxy.Program.Id));

        using var app = LoopbackCaller.Create("127.0.0.2", proxy.Client);
        var revoked = await TokenAsync(app, extraQuery: "token_sha256_to_refresh=" + new string('0', 64));
        Assert.Equal(HttpStatusCode.OK, revoked.Status);
        Assert.Contains(await OpenSslLibrariesAsync(proxy.Program.Id), name => name.StartsWith("libcrypto", StringComparison.Ordinal));
    }

    /// <summary>
    /// The request log and the audit trail are two queues with one writer thread between them (<c>ConsoleQueues.Create</c>):
    /// a queue that made its own writer would show as a second thread, named after its kind ("audit log writer").
    /// The token served wrote a line to each queue, so both have been written by then.
    /// </summary>
    [SkippableFact]
    public async Task One_thread_writes_both_log_queues()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/PID/task/*/comm");
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartProgramAsync(emulator, home: null);
        await Waiting.Eventually(() => proxy.Program.StandardOutput.Contains("\"SourceContext\":\"MsiProxy.Audit\"", StringComparison.Ordinal)
            && proxy.Program.StandardOutput.Contains("\"SourceContext\":\"MsiProxy.Requests\"", StringComparison.Ordinal), Generous,
            "the token's audit event and request line on standard output", () => proxy.Program.StandardOutput);

        var threads = Directory.GetDirectories($"/proc/{proxy.Program.Id}/task")
            .Select(task => File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n')).ToList();
        Assert.Contains(".NET TP Worker", threads); // the names are read right
        // Linux keeps 15 bytes of a thread's name: "audit log writer" reads "audit log write".
        Assert.Equal(["log writer"], threads.Where(name => name.Contains("log write", StringComparison.Ordinal)));
    }

    private static async Task<List<string>> OpenSslLibrariesAsync(int processId) =>
        [.. OpenSslLibrary().Matches(await File.ReadAllTextAsync($"/proc/{processId}/maps")).Select(m => m.Groups[1].Value).Distinct()];

    /// <summary>
    /// In Development the host validates at build time that every registered service can be constructed: what is
    /// removed of YARP's authorization must not leave a service behind that needs it.
    /// </summary>
    [Fact]
    public async Task In_Development_every_service_validates_and_a_token_is_served()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartProgramAsync(emulator, home: null, environmentName: "Development");
        using var management = LoopbackCaller.Create("127.0.0.1", proxy.Management);
        using var ready = await management.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    /// <summary>The real program, one client (127.0.0.2) and the emulator as its upstream, once it has served a token.</summary>
    private static async Task<RunningProgram> StartProgramAsync(ImdsEmulatorServer emulator, string? home, string environmentName = "Production")
    {
        var upstream = emulator.BaseAddress.ToString().TrimEnd('/');
        UpstreamGuard.Check([upstream]);
        var client = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var management = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var environment = new Dictionary<string, string?> { ["DOTNET_ENVIRONMENT"] = environmentName, ["ASPNETCORE_ENVIRONMENT"] = environmentName };
        if (home is not null)
        {
            environment["HOME"] = home;
        }

        var program = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"),
                "--urls", client.ToString().TrimEnd('/'), $"--MsiProxy:Management:Urls={management.ToString().TrimEnd('/')}",
                $"--MsiProxy:Upstreams:0={upstream}", "--MsiProxy:Health:Timeout=00:00:10",
                "--MsiProxy:Clients:0:Name=app", "--MsiProxy:Clients:0:Address=127.0.0.2"],
            environment: environment);
        try
        {
            using var app = LoopbackCaller.Create("127.0.0.2", client);
            var answer = await program.FirstAnswerAsync(() => TokenAsync(app), Generous);
            Assert.True(answer.Status == HttpStatusCode.OK, $"{answer.Status} {answer.Body}\nstdout: {program.StandardOutput}");
            return new RunningProgram(program, client, management);
        }
        catch
        {
            await program.DisposeAsync();
            throw;
        }
    }

    private sealed record RunningProgram(ChildProcess Program, Uri Client, Uri Management) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Program.DisposeAsync();
    }

    private static HashSet<string> LoadedAssemblies(string maps) =>
        [.. DllName().Matches(maps).Select(m => m.Groups[1].Value)];

    [GeneratedRegex(@"/([^/\s]+\.dll)\s*$", RegexOptions.Multiline)]
    private static partial Regex DllName();

    [GeneratedRegex(@"/((?:libssl|libcrypto)\.so[^/\s]*)\s*$", RegexOptions.Multiline)]
    private static partial Regex OpenSslLibrary();

}

using System.Diagnostics;
using System.Net;
using System.Text.Json;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Testing.Clients;

/// <summary>Which real, unmodified client to run.</summary>
public enum SdkKind
{
    /// <summary>Azure.Identity 1.21.0 ManagedIdentityCredential (tests/clients/dotnet/SdkClient).</summary>
    AzureIdentity,

    /// <summary>MSAL.NET 4.92.0 ManagedIdentityApplication (tests/clients/dotnet/SdkClient).</summary>
    Msal,

    /// <summary>@azure/identity 4.14.1 ManagedIdentityCredential on Node (tests/clients/js).</summary>
    Js,

    /// <summary>
    /// Azure.Identity 1.21.0 DefaultAzureCredential, every credential but managed identity excluded through its options
    /// (not AZURE_TOKEN_CREDENTIALS, which skips the probe): its first request is a probe without Metadata.
    /// </summary>
    DefaultAzureCredential,

    /// <summary>
    /// @azure/identity 4.14.1 DefaultAzureCredential with AZURE_TOKEN_CREDENTIALS=prod (environment, workload identity
    /// and managed identity — the latter with its probe — but no developer-tool credentials that would start az or pwsh).
    /// </summary>
    JsDefaultAzureCredential,

    /// <summary>@azure/msal-node 7.2.3 ManagedIdentityApplication used directly (tests/clients/js).</summary>
    MsalNode,

    /// <summary>PowerShell 7.6.9 Invoke-RestMethod -Headers @{Metadata='true'} (tests/clients/pwsh/Get-Token.ps1).</summary>
    PowerShell,
}

/// <summary>One token request made by a client process. At most one selector.</summary>
public sealed record SdkClientRequest(SdkKind Sdk, string Resource)
{
    public string? ClientId { get; init; }

    public string? ObjectId { get; init; }

    public string? ResourceId { get; init; }

    /// <summary>The process is killed (whole tree) after this long and the result says so.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Runs the client through this command, e.g. ["ip", "netns", "exec", "msiproxy-test-1"] for a network
    /// namespace the test created. Only with a wrapper may the authority host be a non-loopback address.
    /// </summary>
    public IReadOnlyList<string>? Wrapper { get; init; }

    /// <summary>Extra environment for the client (e.g. AZURE_TOKEN_CREDENTIALS); applied after scrubbing.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>msal-node's clientCapabilities (e.g. ["cp1"], sent as xms_cc=cp1).</summary>
    public IReadOnlyList<string>? ClientCapabilities { get; init; }
}

/// <summary>
/// What the client printed: {"ok":true,"token","expiresOn"} or {"ok":false,"errorType","message"[,"status"]} (the
/// HTTP status only where the client exposes it: PowerShell).
/// </summary>
public sealed record SdkClientResult(
    bool Ok,
    string? Token,
    DateTimeOffset? ExpiresOn,
    string? ErrorType,
    string? Message,
    int ExitCode,
    bool TimedOut,
    TimeSpan Elapsed,
    string StandardOutput,
    string StandardError)
{
    public int? Status { get; init; }

    public override string ToString() =>
        $"ok={Ok} exit={ExitCode} timedOut={TimedOut} elapsed={Elapsed.TotalSeconds:0.0}s status={Status} error={ErrorType}: {Message}\nstdout: {StandardOutput}\nstderr: {StandardError}";
}

/// <summary>
/// Runs a real SDK client in a child process against an IMDS-compatible endpoint (the emulator or MsiProxy).
/// The SDKs fix their endpoint per process, hence one process per call. The child's environment is scrubbed of
/// every variable that could send it elsewhere (other managed-identity protocols, proxies), and the authority host
/// must be loopback unless a <see cref="SdkClientRequest.Wrapper"/> puts the client in a test-made namespace. Only
/// <see cref="RunTransparentAsync"/> runs a client with no authority host at all — calling 169.254.169.254 itself —
/// and only inside an <see cref="IClientNamespace"/>, where that address leads to what the test started.
/// </summary>
public static class SdkClientRunner
{
    // What the SDKs read besides the variables every child loses (ChildProcess.ScrubbedVariables): nothing of the
    // test runner's identity configuration may steer a client.
    private static readonly string[] ScrubbedVariables =
    [
        "IDENTITY_SERVER_THUMBPRINT", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_TOKEN_CREDENTIALS",
        "AZURE_AUTHORITY_HOST", "DEFAULT_IDENTITY_CLIENT_ID",
    ];

    private static readonly Lazy<string> DotnetClient = new(BuildDotnetClient, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string DotnetClientProject => RepositoryPaths.Combine("tests", "clients", "dotnet", "SdkClient");

    public static string JsClientDirectory => RepositoryPaths.Combine("tests", "clients", "js");

    public static string PowerShellScript => RepositoryPaths.Combine("tests", "clients", "pwsh", "Get-Token.ps1");

    /// <summary>pwsh from PATH, or where `dotnet tool install --global PowerShell` puts it; null when neither has it.</summary>
    public static string? FindPowerShell()
    {
        var candidates = (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "pwsh"))
            .Append(Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "pwsh"));
        return candidates.FirstOrDefault(File.Exists);
    }

    /// <summary>True when this process sees no network interface but loopback (e.g. run under unshare -n).</summary>
    public static bool IsNetworkIsolated =>
        Directory.Exists("/sys/class/net") && Directory.GetDirectories("/sys/class/net").All(d => Path.GetFileName(d) == "lo");

    /// <summary>
    /// Makes the client ready to start at once (builds the .NET client, checks the Node packages), for a test whose
    /// point is when the client's first request arrives.
    /// </summary>
    public static void Prepare(SdkKind sdk)
    {
        switch (sdk)
        {
            case SdkKind.Js or SdkKind.JsDefaultAzureCredential or SdkKind.MsalNode:
                JsEntryPoint();
                break;
            case SdkKind.AzureIdentity or SdkKind.Msal or SdkKind.DefaultAzureCredential:
                _ = DotnetClient.Value;
                break;
            default:
                PowerShellExecutable();
                break;
        }
    }

    public static async Task<SdkClientResult> RunAsync(Uri authorityHost, SdkClientRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(authorityHost);
        ArgumentNullException.ThrowIfNull(request);
        GuardAuthority(authorityHost, request);
        if (File.Exists("/opt/azcmagent/bin/himds"))
        {
            throw new InvalidOperationException("/opt/azcmagent/bin/himds exists: the SDKs would switch to the Azure Arc protocol.");
        }

        // Scheme, host and port only: msal-node appends the path itself and lower-cases the whole URL.
        var launch = CreateLaunch(request, authorityHost.GetLeftPart(UriPartial.Authority));
        return await RunProcessAsync(launch, request.Timeout, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the client with the App Service protocol's variables: <c>IDENTITY_ENDPOINT</c> (a loopback URL, used as
    /// given, path included) and <c>IDENTITY_HEADER</c>. Every SDK then asks there, with the header, instead of IMDS.
    /// </summary>
    public static async Task<SdkClientResult> RunAppServiceAsync(Uri identityEndpoint, string identityHeader, SdkClientRequest request,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(identityEndpoint);
        ArgumentNullException.ThrowIfNull(request);
        GuardAuthority(identityEndpoint, request);
        if (request.Sdk == SdkKind.PowerShell)
        {
            throw new ArgumentException("Get-Token.ps1 speaks the IMDS protocol only.", nameof(request));
        }

        var launch = CreateLaunch(request, authorityHost: null);
        launch.Environment["IDENTITY_ENDPOINT"] = identityEndpoint.ToString();
        launch.Environment["IDENTITY_HEADER"] = identityHeader;
        return await RunProcessAsync(launch, request.Timeout, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the client inside <paramref name="ns"/> with no endpoint override: it calls http://169.254.169.254 as on
    /// an Azure VM, and reaches what the namespace leads that address to (a proxy in it, or a rig VM's host rules).
    /// </summary>
    public static async Task<SdkClientResult> RunTransparentAsync(IClientNamespace ns, SdkClientRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(request);
        if (request.Wrapper is not null)
        {
            throw new ArgumentException("The namespace supplies the wrapper.", nameof(request));
        }

        var launch = CreateLaunch(request with { Wrapper = ns.Wrapper }, authorityHost: null);
        return await RunProcessAsync(launch, request.Timeout, ct).ConfigureAwait(false);
    }

    private static void GuardAuthority(Uri authority, SdkClientRequest request)
    {
        if (authority.Scheme != Uri.UriSchemeHttp)
        {
            throw new ArgumentException($"Authority host {authority} must be http://.", nameof(authority));
        }

        var loopback = authority.IsLoopback || (IPAddress.TryParse(authority.Host, out var ip) && IPAddress.IsLoopback(ip));
        if (!loopback && request.Wrapper is not { Count: > 0 })
        {
            throw new ArgumentException(
                $"Authority host {authority} is not loopback; only a client run inside a test-made namespace (Wrapper) may use it.",
                nameof(authority));
        }

        if (authority.Host == "169.254.169.254")
        {
            throw new ArgumentException("Tests never target the real IMDS address.", nameof(authority));
        }
    }

    /// <summary>How a client process is started: command, environment (a null value removes a variable) and folder.</summary>
    private sealed record Launch(string Program, List<string> Arguments, IReadOnlyList<string> Wrapper, Dictionary<string, string?> Environment,
        string WorkingDirectory);

    private static Launch CreateLaunch(SdkClientRequest request, string? authorityHost)
    {
        if (request.ClientCapabilities is not null && request.Sdk != SdkKind.MsalNode)
        {
            throw new ArgumentException("ClientCapabilities are an msal-node option here.", nameof(request));
        }

        var (program, args) = request.Sdk switch
        {
            SdkKind.Js => ("node", new List<string> { JsEntryPoint(), "--sdk", "azure-identity" }),
            SdkKind.JsDefaultAzureCredential => ("node", new List<string> { JsEntryPoint(), "--sdk", "dac" }),
            SdkKind.MsalNode => ("node", new List<string> { JsEntryPoint(), "--sdk", "msal-node" }),
            SdkKind.Msal => ("dotnet", new List<string> { DotnetClient.Value, "--sdk", "msal" }),
            SdkKind.DefaultAzureCredential => ("dotnet", new List<string> { DotnetClient.Value, "--sdk", "dac" }),
            SdkKind.PowerShell => (PowerShellExecutable(), new List<string> { "-NoProfile", "-NonInteractive", "-File", PowerShellScript }),
            _ => ("dotnet", new List<string> { DotnetClient.Value, "--sdk", "azure-identity" }),
        };
        if (request.Sdk == SdkKind.PowerShell)
        {
            args.AddRange(["-Resource", request.Resource]);
            AddOption(args, "-ClientId", request.ClientId);
            AddOption(args, "-ObjectId", request.ObjectId);
            AddOption(args, "-ResourceId", request.ResourceId);
        }
        else
        {
            args.AddRange(["--resource", request.Resource]);
            AddOption(args, "--client-id", request.ClientId);
            AddOption(args, "--object-id", request.ObjectId);
            AddOption(args, "--resource-id", request.ResourceId);
            AddOption(args, "--client-capabilities", request.ClientCapabilities is null ? null : string.Join(',', request.ClientCapabilities));
        }

        var environment = ScrubbedVariables.ToDictionary(name => name, string? (_) => null);
        if (authorityHost is not null)
        {
            environment["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = authorityHost;
        }

        environment["NO_PROXY"] = "127.0.0.1,localhost";
        environment["no_proxy"] = "127.0.0.1,localhost";
        // No update check or telemetry: pwsh would otherwise look up public names at start-up.
        environment["POWERSHELL_TELEMETRY_OPTOUT"] = "1";
        environment["POWERSHELL_UPDATECHECK"] = "Off";
        if (request.Sdk == SdkKind.JsDefaultAzureCredential)
        {
            environment["AZURE_TOKEN_CREDENTIALS"] = "prod";
        }

        foreach (var (name, value) in request.Environment ?? new Dictionary<string, string>())
        {
            environment[name] = value;
        }

        return new Launch(program, args, request.Wrapper ?? [], environment,
            request.Sdk is SdkKind.Js or SdkKind.JsDefaultAzureCredential or SdkKind.MsalNode ? JsClientDirectory : Path.GetTempPath());
    }

    private static void AddOption(List<string> args, string name, string? value)
    {
        if (value is not null)
        {
            args.AddRange([name, value]);
        }
    }

    private static string PowerShellExecutable() => FindPowerShell() ?? throw new InvalidOperationException(
        "pwsh is missing: tests/run-all.sh installs it (dotnet tool install --global PowerShell --version 7.6.9).");

    private static string JsEntryPoint()
    {
        if (!Directory.Exists(Path.Combine(JsClientDirectory, "node_modules", "@azure", "identity"))
            || !Directory.Exists(Path.Combine(JsClientDirectory, "node_modules", "@azure", "msal-node")))
        {
            throw new InvalidOperationException(
                $"{JsClientDirectory}/node_modules is missing: run `npm ci --prefix tests/clients/js` first.");
        }

        return Path.Combine(JsClientDirectory, "get-token.mjs");
    }

    private static async Task<SdkClientResult> RunProcessAsync(Launch launch, TimeSpan timeout, CancellationToken ct)
    {
        var stopwatch = Stopwatch.StartNew();
        await using var process = ChildProcess.Start(launch.Program, launch.Arguments, launch.Wrapper, launch.Environment, launch.WorkingDirectory);
        var exit = await process.WaitForExitAsync(timeout, ct).ConfigureAwait(false);
        if (exit is null)
        {
            await process.KillAsync().ConfigureAwait(false); // the whole tree, and its output read to the end
        }

        stopwatch.Stop();
        return Parse(process.StandardOutput, process.StandardError, exit ?? -1, timedOut: exit is null, stopwatch.Elapsed);
    }

    private static SdkClientResult Parse(string output, string errors, int exitCode, bool timedOut, TimeSpan elapsed)
    {
        var line = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault(l => l.StartsWith('{'));
        if (line is null)
        {
            return new SdkClientResult(false, null, null, timedOut ? "Timeout" : "NoOutput", "The client printed no JSON result.", exitCode, timedOut, elapsed, output, errors);
        }

        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        string? Get(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var ok = root.TryGetProperty("ok", out var okValue) && okValue.ValueKind == JsonValueKind.True;
        DateTimeOffset? expiresOn = DateTimeOffset.TryParse(Get("expiresOn"), System.Globalization.CultureInfo.InvariantCulture, out var e) ? e : null;
        int? status = root.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt32() : null;
        return new SdkClientResult(ok, Get("token"), expiresOn, Get("errorType"), Get("message"), exitCode, timedOut, elapsed, output, errors)
        {
            Status = status,
        };
    }

    /// <summary>
    /// Builds tests/clients/dotnet/SdkClient once per test process (incremental, so cheap when up to date), under a
    /// file lock so parallel test assemblies do not build it at the same time.
    /// </summary>
    private static string BuildDotnetClient()
    {
        var project = DotnetClientProject;
        var output = Path.Combine(project, "bin", "Release", "net10.0", "SdkClient.dll");
        using (AcquireBuildLock())
        {
            var start = new ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = project,
            };
            foreach (var arg in new[] { "build", project, "-c", "Release", "--nologo", "-v", "q" })
            {
                start.ArgumentList.Add(arg);
            }

            using var build = Process.Start(start)!;
            var log = build.StandardOutput.ReadToEndAsync();
            var err = build.StandardError.ReadToEnd();
            build.WaitForExit();
            // An existing output is good enough when the build cannot run (e.g. inside a network namespace with no feed).
            if (build.ExitCode != 0 && !File.Exists(output))
            {
                throw new InvalidOperationException($"dotnet build {project} failed ({build.ExitCode}):\n{log.Result}\n{err}");
            }
        }

        return File.Exists(output) ? output : throw new InvalidOperationException($"{output} was not produced.");
    }

    private static FileStream AcquireBuildLock()
    {
        var lockPath = Path.Combine(Path.GetTempPath(), "msiproxy-sdkclient-build.lock");
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
        }
    }
}

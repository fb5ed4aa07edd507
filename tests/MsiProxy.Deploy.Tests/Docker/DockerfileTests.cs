using System.Text.RegularExpressions;
using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Deploy.Tests.Docker;

/// <summary>
/// The Dockerfiles against what they build: the publish line of each build stage is run here (win-x64 and
/// linux-x64), and every file the final stage copies or executes must exist in that output or in the build context.
/// </summary>
public class DockerfileTests(PublishFixture publish) : IClassFixture<PublishFixture>
{
    public static TheoryData<string> ImageDockerfiles => new()
    {
        "docker/windows/Dockerfile",
        "docker/windows/Dockerfile.msiserviceclient",
        "docker/windows/Dockerfile.emulator",
        "docker/linux/Dockerfile",
        "docker/linux/Dockerfile.emulator",
    };

    /// <summary>The images that run MsiProxy itself (the msiserviceclient is the same binary).</summary>
    public static TheoryData<string> ProxyDockerfiles => new()
    {
        "docker/windows/Dockerfile",
        "docker/windows/Dockerfile.msiserviceclient",
        "docker/linux/Dockerfile",
    };

    private static Dockerfile Load(string relative) => Dockerfile.Load(RepositoryPaths.Combine(relative.Split('/')));

    private static bool IsWindows(string relative) => relative.Contains("/windows/", StringComparison.Ordinal);

    /// <summary>Normalises an image path for comparison (Windows paths are case-insensitive, separators vary).</summary>
    private static string Key(string path, bool windows) =>
        windows ? path.Replace('/', '\\').TrimEnd('\\').ToLowerInvariant() : path.TrimEnd('/');

    /// <summary>The final image's files that the Dockerfile puts there: image path → where it comes from.</summary>
    private Dictionary<string, string> FinalImageFiles(Dockerfile file, bool windows, out List<string> fromBuildImage)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        fromBuildImage = [];
        var separator = windows ? "\\" : "/";
        foreach (var copy in file.Final.All("COPY"))
        {
            var (flags, sources, destination) = copy.CopyParts();
            if (flags.TryGetValue("from", out var stageName))
            {
                var stage = Assert.Single(file.Stages, s => s.Name == stageName);
                var publishRun = stage.All("RUN").Single(r => r.Arguments.StartsWith("dotnet publish", StringComparison.Ordinal));
                var publishDir = Key(publishRun.Arguments.Split(' ')[^1], windows);
                foreach (var source in sources)
                {
                    if (Key(source, windows) != publishDir)
                    {
                        // Something the SDK image itself carries (e.g. PowerShell): cannot be checked without it.
                        fromBuildImage.Add(Key(destination, windows));
                        continue;
                    }

                    var output = publish.Publish(stage);
                    foreach (var published in Directory.GetFiles(output, "*", SearchOption.AllDirectories))
                    {
                        var relative = Path.GetRelativePath(output, published).Replace("/", separator, StringComparison.Ordinal);
                        files[Key(destination.TrimEnd('\\', '/') + separator + relative, windows)] = published;
                    }
                }
            }
            else
            {
                foreach (var source in sources)
                {
                    var local = RepositoryPaths.Combine(source.Split('/', StringSplitOptions.RemoveEmptyEntries));
                    if (Directory.Exists(local))
                    {
                        foreach (var inFolder in Directory.GetFiles(local, "*", SearchOption.AllDirectories))
                        {
                            var relative = Path.GetRelativePath(local, inFolder).Replace("/", separator, StringComparison.Ordinal);
                            files[Key(destination.TrimEnd('\\', '/') + separator + relative, windows)] = inFolder;
                        }

                        continue;
                    }

                    Assert.True(File.Exists(local), $"COPY {source}: not in the build context (repository)");
                    var target = destination.EndsWith('\\') || destination.EndsWith('/') ? destination + Path.GetFileName(source) : destination;
                    files[Key(target, windows)] = local;
                }
            }
        }

        return files;
    }

    [Theory]
    [MemberData(nameof(ImageDockerfiles))]
    public void Entrypoint_and_its_file_arguments_exist_in_the_published_output(string relative)
    {
        var windows = IsWindows(relative);
        var file = Load(relative);
        var files = FinalImageFiles(file, windows, out var fromBuildImage);
        Assert.NotEmpty(files);

        var entrypoint = file.Final.All("ENTRYPOINT").Single().ExecForm();
        var absolute = entrypoint.Where(a => windows ? a.Length > 2 && a[1] == ':' : a.StartsWith("/app/", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(absolute);
        foreach (var path in absolute)
        {
            var key = Key(path, windows);
            Assert.True(files.ContainsKey(key) || fromBuildImage.Any(p => key.StartsWith(p + "\\", StringComparison.Ordinal)),
                $"{relative}: ENTRYPOINT uses {path}, which the image does not get from the publish output or the context");
        }

        var assembly = absolute.FirstOrDefault(a => (a.EndsWith(".exe", StringComparison.OrdinalIgnoreCase) || a.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            && !a.Contains("powershell", StringComparison.OrdinalIgnoreCase));
        if (assembly is null)
        {
            // Native AOT (the Linux proxy): one self-contained executable, and no managed assembly that would need a runtime.
            var binary = files[Key(absolute[0], windows)];
            Assert.True(IsElfExecutable(binary), $"{relative}: ENTRYPOINT {absolute[0]} is not an ELF executable");
            Assert.DoesNotContain(files.Keys, k => k.EndsWith(".dll", StringComparison.Ordinal) || k.EndsWith(".runtimeconfig.json", StringComparison.Ordinal));
            return;
        }

        // A framework-dependent app needs its runtimeconfig and deps next to the entry assembly.
        var stem = Key(assembly, windows)[..^4];
        Assert.Contains(stem + ".dll", files.Keys);
        Assert.Contains(stem + ".runtimeconfig.json", files.Keys);
        Assert.Contains(stem + ".deps.json", files.Keys);
    }

    [Theory]
    [MemberData(nameof(ImageDockerfiles))]
    public void Final_stage_is_least_privilege_healthchecked_and_configured_by_environment(string relative)
    {
        var windows = IsWindows(relative);
        var file = Load(relative);
        var final = file.Final;
        var isEmulator = relative.EndsWith(".emulator", StringComparison.Ordinal);
        var isServiceClient = relative.EndsWith(".msiserviceclient", StringComparison.Ordinal);

        var user = final.All("USER").Last().Arguments;
        Assert.Equal(windows ? (isServiceClient ? "ContainerAdministrator" : "ContainerUser") : "$APP_UID", user);

        var health = final.All("HEALTHCHECK").Single().ExecForm("CMD");
        Assert.Equal(windows ? "curl.exe" : "curl", health[0]);
        Assert.Contains(isEmulator ? "http://localhost:80/metadata/instance?api-version=2021-02-01" : "http://localhost:8081/healthz", health);

        var exposed = final.All("EXPOSE").SelectMany(e => e.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToHashSet();
        Assert.Equal(isEmulator ? ["80"] : ["80", "8081"], exposed.Order(StringComparer.Ordinal));

        var env = string.Join(' ', final.All("ENV").Select(e => e.Arguments));
        Assert.Contains("ASPNETCORE_URLS=http://+:80", env, StringComparison.Ordinal);
        if (!isEmulator)
        {
            Assert.Contains("MsiProxy__Management__Urls=http://+:8081", env, StringComparison.Ordinal);
        }

        if (!isEmulator && !isServiceClient)
        {
            // Where compose and the chart mount the state volume (Linux: a folder the app user and root's group may write).
            Assert.Contains(windows ? @"MsiProxy__StateFile=C:\ProgramData\MsiProxy\state.json" : "MsiProxy__StateFile=/var/lib/msi-proxy/state.json", env,
                StringComparison.Ordinal);
            if (!windows)
            {
                Assert.Contains(final.All("RUN"), r => r.Arguments.Contains("chown $APP_UID:0 /var/lib/msi-proxy", StringComparison.Ordinal)
                    && r.Arguments.Contains("chmod 0770 /var/lib/msi-proxy", StringComparison.Ordinal));
            }
        }

        if (windows)
        {
            Assert.All(file.Stages, s => Assert.EndsWith("-nanoserver-${WINDOWS_VERSION}", s.BaseImage, StringComparison.Ordinal));
            Assert.Contains("ARG WINDOWS_VERSION=ltsc2022", File.ReadAllText(RepositoryPaths.Combine(relative.Split('/'))), StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The restore layer sees only what is copied before <c>dotnet restore</c>: every project the restored one references
    /// (transitively) and every Directory.Build.props above them must be there, at the same path, or the image build fails
    /// — which the publish run here (restore and publish in one step, on the whole repository) would not notice.
    /// </summary>
    [Theory]
    [MemberData(nameof(ImageDockerfiles))]
    public void Restore_layer_copies_every_project_and_props_file_the_restore_reads(string relative)
    {
        var build = Load(relative).Stages.Single(s => s.All("RUN").Any(r => r.Arguments.StartsWith("dotnet restore", StringComparison.Ordinal)));
        var restoreAt = build.Instructions.ToList().FindIndex(i => i.Keyword == "RUN" && i.Arguments.StartsWith("dotnet restore", StringComparison.Ordinal));
        var copied = new HashSet<string>(StringComparer.Ordinal);
        foreach (var copy in build.Instructions.Take(restoreAt).Where(i => i.Keyword == "COPY"))
        {
            var (_, sources, destination) = copy.CopyParts();
            foreach (var source in sources)
            {
                var folder = Path.GetDirectoryName(source)!.Replace('\\', '/');
                Assert.True(destination.Replace('\\', '/').TrimEnd('/') == (folder.Length == 0 ? "." : folder),
                    $"{relative}: COPY {source} {destination} does not keep the file at its repository path");
                copied.Add(source);
            }
        }

        var restored = build.All("RUN").First(r => r.Arguments.StartsWith("dotnet restore", StringComparison.Ordinal)).Arguments.Split(' ')[2];
        var needed = new SortedSet<string>(StringComparer.Ordinal) { "global.json", "Directory.Packages.props" };
        var pending = new Stack<string>([restored]);
        while (pending.TryPop(out var project))
        {
            if (!needed.Add(project))
            {
                continue;
            }

            var folder = Path.GetDirectoryName(project)!;
            for (var up = folder; up.Length > 0; up = Path.GetDirectoryName(up)!)
            {
                if (File.Exists(RepositoryPaths.Combine([.. up.Split('/'), "Directory.Build.props"])))
                {
                    needed.Add(up + "/Directory.Build.props");
                }
            }

            needed.Add("Directory.Build.props");
            var xml = System.Xml.Linq.XDocument.Load(RepositoryPaths.Combine(project.Split('/')));
            foreach (var reference in xml.Descendants("ProjectReference"))
            {
                var path = Path.GetRelativePath(RepositoryPaths.Root, Path.GetFullPath(Path.Combine(RepositoryPaths.Combine(folder.Split('/')),
                    reference.Attribute("Include")!.Value.Replace('\\', '/')))).Replace('\\', '/');
                pending.Push(path);
            }
        }

        Assert.True(needed.Count > 4, "the restored project was not read");
        var missing = needed.Where(n => !copied.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"{relative}: not copied before dotnet restore: {string.Join(", ", missing)}");
    }

    [Theory]
    [MemberData(nameof(ProxyDockerfiles))]
    public void Proxy_images_carry_no_emulator_assembly(string relative)
    {
        var windows = IsWindows(relative);
        var files = FinalImageFiles(Load(relative), windows, out _);
        Assert.DoesNotContain(files.Keys, k => k.Contains("MsiProxy.ImdsEmulator", StringComparison.OrdinalIgnoreCase));

        // The emulator belongs to the demo (src/MsiProxy.Demo): neither its files nor a dependency on it ship. Native
        // AOT compiles every assembly it uses into the one binary, whose metadata then names it.
        var app = windows ? @"c:\app\" : "/app/";
        var manifest = files.TryGetValue(app + (windows ? "msiproxy.deps.json" : "MsiProxy.deps.json"), out var deps) ? deps : files[app + "MsiProxy"];
        Assert.Contains("MsiProxy.Pipeline", File.ReadAllText(manifest, System.Text.Encoding.Latin1), StringComparison.Ordinal);
        Assert.DoesNotContain("MsiProxy.ImdsEmulator", File.ReadAllText(manifest, System.Text.Encoding.Latin1), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The GC the images run is the one docs/benchmarks.md measured (server, no background GC), and so is the thread pool's
    /// spin limit (0: idle workers sleep at once; MsiProxy.csproj). publish.props once set
    /// it through a misspelt property that MSBuild ignored; only what the published output carries shows what takes
    /// effect: the runtimeconfig of a framework-dependent build, and the running binary's start-up line under Native AOT,
    /// which compiles the settings in.
    /// </summary>
    [Theory]
    [MemberData(nameof(ProxyDockerfiles))]
    public async Task Proxy_images_run_the_measured_gc_mode_and_thread_pool_spin_limit(string relative)
    {
        var windows = IsWindows(relative);
        var files = FinalImageFiles(Load(relative), windows, out _);
        if (files.TryGetValue((windows ? @"c:\app\" : "/app/") + (windows ? "msiproxy.runtimeconfig.json" : "MsiProxy.runtimeconfig.json"), out var config))
        {
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(config));
            var properties = json.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
            Assert.True(properties.GetProperty("System.GC.Server").GetBoolean(), $"{relative}: {properties}");
            Assert.False(properties.GetProperty("System.GC.Concurrent").GetBoolean(), $"{relative}: {properties}");
            Assert.Equal(0, properties.GetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit").GetInt32());
            return;
        }

        Assert.False(windows, $"{relative}: no runtimeconfig.json");
        // Loopback listeners on ports the system picks; the upstream is a closed loopback port, never the product default.
        await using var program = ChildProcess.Start(files["/app/MsiProxy"],
            ["--urls", "http://127.0.0.1:0", "--MsiProxy:Management:Urls=http://127.0.0.1:0", "--MsiProxy:Upstreams:0=http://127.0.0.1:9"]);
        var started = await program.WaitForLineAsync(new Regex("""(?m)^\{[^\n]*"@m":"MsiProxy [^\n]* started: [^\n]*\}$"""), TimeSpan.FromSeconds(60));
        using var line = System.Text.Json.JsonDocument.Parse(started.Value);
        Assert.Equal("Native AOT", line.RootElement.GetProperty("Compilation").GetString());
        Assert.Equal("server", line.RootElement.GetProperty("GcMode").GetString());
        Assert.False(line.RootElement.GetProperty("BackgroundGc").GetBoolean(), started.Value);
        Assert.Equal("0", line.RootElement.GetProperty("ThreadPoolSpinLimit").GetString());
    }

    private static bool IsElfExecutable(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var file = File.OpenRead(path);
        return file.Read(magic) == 4 && magic.SequenceEqual("\u007fELF"u8)
            && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0);
    }

    [Fact]
    public void Ci_dockerfile_mirrors_the_production_linux_image()
    {
        var production = Load("docker/linux/Dockerfile").Final;
        var ci = Load("docker/linux/Dockerfile.ci").Final;
        foreach (var keyword in new[] { "USER", "EXPOSE", "ENV", "ENTRYPOINT" })
        {
            Assert.Equal(production.All(keyword).Select(i => i.Arguments), ci.All(keyword).Select(i => i.Arguments));
        }

        Assert.Equal(production.All("HEALTHCHECK").Single().ExecForm("CMD"), ci.All("HEALTHCHECK").Single().ExecForm("CMD"));
    }
}

using System.Text.RegularExpressions;
using MsiProxy.Configuration;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Tests.Configuration;

/// <summary>
/// A bad address, CIDR, URL or path stops the proxy with exit code 2 and a message naming the key and the value —
/// shown with the real program (inside a network namespace with only loopback) and with the validator directly.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class ConfigurationValidationTests
{
    // Loopback listeners and a loopback upstream (nothing listens there): only the value under test is wrong.
    private static readonly string[] GoodBase =
    [
        "--urls", "http://127.0.0.1:0", "--MsiProxy:Management:Urls=http://127.0.0.1:0", "--MsiProxy:Upstreams:0=http://127.0.0.1:9",
        "--MsiProxy:Clients:0:Name=app", "--MsiProxy:Clients:0:Address=127.0.0.2",
    ];

    public static TheoryData<string, string, string> BadSettings => new()
    {
        { "MsiProxy:Clients:0:Address", "300.1.1.1", "MsiProxy:Clients:0:Address = '300.1.1.1'" },
        { "MsiProxy:Clients:0:Address", "10.0.0.0/33", "MsiProxy:Clients:0:Address = '10.0.0.0/33'" },
        { "MsiProxy:Clients:0:Address", "app.example", "MsiProxy:Clients:0:Address = 'app.example'" },
        { "MsiProxy:Clients:0:Address", "0.0.0.0/0", "MsiProxy:Clients:0:Address = '0.0.0.0/0' is every address" },
        { "MsiProxy:Clients:0:Address", "::/0", "MsiProxy:Clients:0:Address = '::/0' is every address" },
        { "MsiProxy:Shutdown:ReadinessDelay", "00:00:30", "MsiProxy:Shutdown:ReadinessDelay = 00:00:30 must be at least 0 and less than MsiProxy:Shutdown:DrainTimeout" },
        { "MsiProxy:Shutdown:DrainTimeout", "00:00:00", "MsiProxy:Shutdown:DrainTimeout = 00:00:00 must be positive" },
        { "MsiProxy:StateFile", "/tmp/", "MsiProxy:StateFile = '/tmp/' is not a file path" },
        { "MsiProxy:Upstreams:0", "ftp://127.0.0.1:9", "MsiProxy:Upstreams:0 = 'ftp://127.0.0.1:9'" },
        { "MsiProxy:Upstreams:0", "http://127.0.0.1:9/metadata", "MsiProxy:Upstreams:0 = 'http://127.0.0.1:9/metadata'" },
        { "MsiProxy:AllowedPaths:0", "/metadata/instance/../identity", "MsiProxy:AllowedPaths:0 = '/metadata/instance/../identity'" },
        { "MsiProxy:AllowedPaths:0", "/admin", "MsiProxy:AllowedPaths:0 = '/admin'" },
        { "MsiProxy:DefaultEndpoints:0", "everything", "MsiProxy:DefaultEndpoints:0 = 'everything' is not an endpoint" },
        { "MsiProxy:Clients:0:Endpoints:0", "/metadata/attested", "MsiProxy:Clients:0:Endpoints:0 = '/metadata/attested' is not an endpoint" },
        { "MsiProxy:HoldTimeout", "-00:00:01", "MsiProxy:HoldTimeout = -00:00:01 must be positive" },
        { "MsiProxy:Clients:0:Identities:0", "client_id=not-a-guid", "MsiProxy:Clients:0:Identities:0 = 'client_id=not-a-guid'" },
        { "urls", "http://proxy.example:80", "urls = 'http://proxy.example:80'" },
        { "MsiProxy:Management:Urls", "https://127.0.0.1:0", "MsiProxy:Management:Urls = 'https://127.0.0.1:0'" },
        { "MsiProxy:Logging:QueueCapacity", "0", "MsiProxy:Logging:QueueCapacity = '0' must be a whole number of events from 1 to 1000000" },
        { "MsiProxy:Logging:QueueCapacity", "lots", "MsiProxy:Logging:QueueCapacity = 'lots' must be a whole number" },
        { "Serilog:MinimumLevel:Override:Yarp", "Loud", "Serilog:MinimumLevel:Override:Yarp = 'Loud' must be one of Verbose, Debug" },
        // Values the binder cannot convert: its message names them.
        { "MsiProxy:Cache:MaxEntries", "lots", "Failed to convert configuration value 'lots' at 'MsiProxy:Cache:MaxEntries' to type 'System.Int32'" },
        { "MsiProxy:UnboundIdentity", "Maybe", "Failed to convert configuration value 'Maybe' at 'MsiProxy:UnboundIdentity'" },
        { "MsiProxy:HoldTimeout", "soon", "Failed to convert configuration value 'soon' at 'MsiProxy:HoldTimeout' to type 'System.TimeSpan'" },
        { "MsiProxy:Kubernetes:Enabled", "yes", "Failed to convert configuration value 'yes' at 'MsiProxy:Kubernetes:Enabled' to type 'System.Boolean'" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task The_real_program_exits_2_naming_the_key_and_value(string key, string value, string expected)
    {
        var args = GoodBase.ToList();
        if (key == "urls")
        {
            args[1] = value;
        }
        else
        {
            args.Add($"--{key}={value}");
        }

        await using var program = StartIsolated(args);
        var exit = await program.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 2, $"exit {exit}\n{program.Output}");
        Assert.Contains(expected, program.StandardError);
        Assert.DoesNotContain("   at ", program.StandardError); // a message, not a stack trace
    }

    [Theory]
    [InlineData("monitor", "--MsiProxy:Docker:ProxyPort=eighty", "'eighty' at 'MsiProxy:Docker:ProxyPort'")]
    [InlineData("monitor", "--MsiProxy:Docker:ReconcileInterval=often", "'often' at 'MsiProxy:Docker:ReconcileInterval'")]
    [InlineData("install-host-rules", "--MsiProxy:Docker:ProxyPort=eighty", "'eighty' at 'MsiProxy:Docker:ProxyPort'")]
    [InlineData("uninstall-pod-rules", "--MsiProxy:Kubernetes:Dnat:ProxyPort=eighty", "'eighty' at 'MsiProxy:Kubernetes:Dnat:ProxyPort'")]
    public async Task Each_subcommand_exits_2_naming_a_value_the_binder_cannot_convert(string subcommand, string setting, string expected)
    {
        await using var program = StartIsolated([subcommand, "--MsiProxy:Monitor:AdminUrl=http://127.0.0.1:9", "--MsiProxy:Monitor:ApiKey=test-key", setting]);
        var exit = await program.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 2, $"exit {exit}\n{program.Output}");
        Assert.Contains("Failed to convert configuration value " + expected, program.Output);
        Assert.DoesNotContain("   at ", program.Output);
    }

    [Fact]
    public async Task The_real_program_with_good_settings_keeps_running()
    {
        await using var program = StartIsolated(GoodBase);

        // Every configuration error surfaces before the host has started (building, mapping, ValidateOnStart): once it
        // says so, no exit 2 can follow. A bad setting would end the wait at once (the process exits first).
        await program.WaitForLineAsync(new Regex("Application started"), TimeSpan.FromSeconds(60));
        Assert.False(program.HasExited, program.Output);
    }

    /// <summary>The real program in a network namespace with only loopback: whatever its settings, it reaches nothing.</summary>
    private static ChildProcess StartIsolated(IEnumerable<string> args) =>
        ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"), .. args], ChildProcess.IsolatedWrapper);

    [Fact]
    public void The_validator_names_every_bad_key_and_value_at_once()
    {
        var options = new MsiProxyOptions
        {
            Upstreams = ["http://127.0.0.1:9", "not a url"],
            Clients =
            [
                new ClientOptions { Name = "a", Address = "127.0.0.300" },
                new ClientOptions { Name = "a", Address = "::1/129" },
                new ClientOptions { Name = "", Address = "127.0.0.4" },
                new ClientOptions { Name = "line\nbreak", Address = "127.0.0.5" },
                new ClientOptions { Name = "everyone", Address = "::/0" },
            ],
            AllowedPaths = ["/metadata/instance", "/metadata//x"],
        };

        var result = new MsiProxyOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        var failures = result.Failures!.ToList();
        Assert.Contains(failures, f => f.Contains("MsiProxy:Upstreams:1 = 'not a url'"));
        Assert.Contains(failures, f => f.Contains("MsiProxy:Clients:0:Address = '127.0.0.300'"));
        Assert.Contains(failures, f => f.Contains("MsiProxy:Clients:1:Address = '::1/129'"));
        Assert.Contains(failures, f => f.Contains("MsiProxy:Clients:1:Name = 'a'"));
        Assert.Contains(failures, f => f.Contains("MsiProxy:Clients:2:Name"));
        Assert.Contains("MsiProxy:Clients:3:Name must not contain control or format characters (U+000A at position 4)", failures);
        Assert.Contains(failures, f => f.StartsWith("MsiProxy:Clients:4:Address = '::/0' is every address", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("MsiProxy:AllowedPaths:1 = '/metadata//x'"));
        Assert.DoesNotContain(failures, f => f.Contains("AllowedPaths:0"));
    }

    [Fact]
    public void Good_options_pass_the_validator()
    {
        var options = new MsiProxyOptions
        {
            Upstreams = ["http://127.0.0.1:9"],
            Clients = [new ClientOptions { Name = "a", Address = "127.0.0.0/29", Identities = ["system", "*"] }, new ClientOptions { Name = "b", Address = "::1" }],
            AllowedPaths = ["/metadata/instance", "/metadata/identity/oauth2/token"],
        };

        var result = new MsiProxyOptionsValidator().Validate(null, options);

        Assert.True(result.Succeeded, string.Join("; ", result.Failures ?? []));
    }
}

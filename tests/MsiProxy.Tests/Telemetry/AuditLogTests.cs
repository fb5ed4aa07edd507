using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Management;
using MsiProxy.Tests.Tokens;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Telemetry;

[Collection(CapturedLogsRunAlone.Name)]
public sealed class AuditLogTests
{
    [Fact]
    public async Task Every_token_decision_is_one_audit_event_with_who_what_and_how_and_never_the_token()
    {
        var x = UserAssigned(0);
        var y = UserAssigned(1);
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        var settings = Settings(emulator);
        settings["MsiProxy:Management:ApiKey"] = "admin-key-0123456789";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var admin = new AdminClient(proxy, "admin-key-0123456789");
        await admin.PutAsync("/admin/clients/web", new { address = "127.0.0.2", identities = new[] { x.ClientId }, containerId = "4f1c2d" });
        using var app = proxy.CreateClient("127.0.0.2");

        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(app, extraQuery: $"client_id={y.ClientId}")).Status);

        var audit = proxy.Logs.Events.Where(e => e.Category == AuditLog.Category).ToList();
        Assert.Equal(["fetched", "cache", "denied:identity"], audit.Select(e => e.Value("Decision")));
        foreach (var e in audit)
        {
            Assert.Equal("127.0.0.2", e.Value("Caller"));
            Assert.Equal("web", e.Value("ClientName"));
            Assert.Equal("4f1c2d", e.Value("ContainerId"));
            Assert.Equal(Arm, e.Value("Resource"));
            Assert.True(double.Parse(e.Value("DurationMs")!, System.Globalization.CultureInfo.InvariantCulture) >= 0);
        }

        Assert.Equal($"client_id={x.ClientId}", audit[0].Value("Identity"));
        Assert.Equal("200", audit[0].Value("Status"));
        Assert.Equal(emulator.BaseAddress.ToString().TrimEnd('/'), audit[0].Value("Upstream"));
        Assert.Equal("200", audit[1].Value("Status"));
        Assert.Null(audit[1].Value("Upstream")); // served from the cache: no upstream involved
        Assert.Equal($"client_id={y.ClientId}", audit[2].Value("Identity"));
        Assert.Equal("403", audit[2].Value("Status"));

        var everything = proxy.Logs.AllText();
        Assert.NotEmpty(emulator.State.IssuedTokens);
        Assert.All(emulator.State.IssuedTokens, token =>
        {
            Assert.DoesNotContain(token, everything, StringComparison.Ordinal);
            Assert.DoesNotContain(token.Split('.')[1], everything, StringComparison.Ordinal);
        });
    }
}

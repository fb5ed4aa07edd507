using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Emulator;
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
        await admin.PutAsync("/admin/clients/web", new { address = "127.0.0.2", identities = new[] { x.ClientId }, workloadId = "4f1c2d" });
        using var app = proxy.CreateClient("127.0.0.2");

        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(app, extraQuery: $"client_id={y.ClientId}")).Status);

        var audit = await proxy.Logs.WaitForAsync(MsiProxyTelemetry.AuditCategory, 3);
        Assert.Equal(["fetched", "cache", "denied:identity"], audit.Select(e => e.Value("Decision")));
        foreach (var e in audit)
        {
            Assert.Equal("127.0.0.2", e.Value("Caller"));
            Assert.Equal("web", e.Value("ClientName"));
            Assert.Equal("4f1c2d", e.Value("WorkloadId"));
            Assert.Equal(Arm, e.Value("Resource"));
            Assert.True(double.Parse(e.Value("DurationMs")!, System.Globalization.CultureInfo.InvariantCulture) >= 0);
        }

        Assert.Equal($"client_id={x.ClientId}", audit[0].Value("Identity"));
        Assert.Equal("200", audit[0].Value("Status"));
        Assert.Equal(emulator.BaseAddress.ToString().TrimEnd('/'), audit[0].Value("Upstream"));
        Assert.Equal("200", audit[1].Value("Status"));
        Assert.Null(audit[1].Value("Upstream")); // served from the cache: no upstream involved
        Assert.Equal($"client_id={y.ClientId}", audit[2].Value("Identity"));
        Assert.Equal("400", audit[2].Value("Status")); // IMDS's "Identity not found"; the audit keeps the real reason

        var everything = proxy.Logs.AllText();
        Assert.NotEmpty(emulator.State.IssuedTokens);
        Assert.All(emulator.State.IssuedTokens, token =>
        {
            Assert.DoesNotContain(token, everything, StringComparison.Ordinal);
            Assert.DoesNotContain(token.Split('.')[1], everything, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task Forwarded_requests_and_refusals_are_audited_too_with_what_went_where()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("app", "127.0.0.2", [])));
        using var app = proxy.CreateClient("127.0.0.2");
        using var stranger = proxy.CreateClient("127.0.0.3");

        foreach (var (client, target) in new[]
        {
            (app, "/metadata/instance/compute?api-version=2021-02-01"),
            (app, "/metadata/instance/compute?api-version=2021-02-01"),
            (app, "/metadata/attested/document?api-version=2021-02-01"),
            (stranger, "/metadata/instance?api-version=2021-02-01"),
        })
        {
            using var response = await client.SendAsync(ImdsRequests.Get(target));
        }

        var audit = await proxy.Logs.WaitForAsync(MsiProxyTelemetry.AuditCategory, 4);
        Assert.Equal(["forwarded", "forwarded:shared", "denied:endpoint", "denied:unregistered"], audit.Select(e => e.Value("Decision")));
        Assert.Equal(["instance", "instance", "attested", "instance"], audit.Select(e => e.Value("Endpoint")));
        Assert.Equal("/metadata/instance/compute", audit[0].Value("Path"));
        Assert.Equal(emulator.BaseAddress.ToString().TrimEnd('/'), audit[0].Value("Upstream"));
        Assert.Equal(["200", "200", "403", "403"], audit.Select(e => e.Value("Status")));
        Assert.Equal([null, null, null, "127.0.0.3"], audit.Select(e => e.Value("ClientName") is null ? e.Value("Caller") : null));
        Assert.Single(emulator.State.Requests, r => r.Path == "/metadata/instance/compute");
    }

    [Fact]
    public async Task A_refused_traversal_is_audited_with_the_path_as_sent_not_as_kestrel_decoded_it()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("app", "127.0.0.2", [])));

        var response = await MsiProxy.Testing.Net.RawHttp.GetAsync(proxy.ClientAddress,
            "/metadata/instance/../identity/oauth2/token?api-version=2018-02-01&resource=https://x", [("Metadata", "true")], from: "127.0.0.2");

        Assert.Equal(404, response.Status);
        var audit = Assert.Single(await proxy.Logs.WaitForAsync(MsiProxyTelemetry.AuditCategory, 1));
        Assert.Equal("invalid:path", audit.Value("Decision"));
        Assert.Equal("/metadata/instance/../identity/oauth2/token", audit.Value("Path"));
    }
}

using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// Issue 16 in the VM rig: a container started with the App Service protocol's <c>IDENTITY_ENDPOINT</c> and
/// <c>IDENTITY_HEADER</c> is registered by the monitor with its secret as part of its proof — read from the container's
/// configuration by the real Docker engine — and is then served on <c>/msi/token</c> with that secret only.
/// </summary>
[Trait("Category", "E2E")]
public sealed class AppServiceEndToEndTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task A_container_started_with_IDENTITY_HEADER_gets_tokens_on_msi_token_with_its_secret_and_nothing_without_it()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps");
        await lab.StartProxyAsync();
        var secret = Guid.NewGuid().ToString("N");
        var run = lab.Rig.Docker(["run", "-d", "--name", "orders", "--network", "apps", "--label", "msi-proxy.client=true",
            "--label", "msi-proxy.identities=" + VmNetwork.ClientId, "-e", "IDENTITY_ENDPOINT=http://169.254.169.254/msi/token",
            "-e", "IDENTITY_HEADER=" + secret, VmNetwork.Image, "sleep", "3600"]);
        Assert.True(run.Succeeded, run.Describe());

        // The app's own call, as an SDK makes it: the endpoint and the secret from its environment.
        var served = VmLab.Marker("appsvc");
        VmLab.AssertToken(lab.Rig.Docker(["exec", "orders", "sh", "-c", AppServiceCall(served, "$IDENTITY_HEADER")]));
        Assert.Single(await lab.ImdsRequestsWithAsync(served));

        var registered = await lab.AdminAsync("/admin/clients/orders");
        Assert.NotNull(registered);
        Assert.Equal("address+secret", registered.Value.GetProperty("proof").GetString());
        Assert.True(registered.Value.GetProperty("identityHeader").GetBoolean());
        Assert.DoesNotContain(secret, registered.Value.GetRawText(), StringComparison.Ordinal);

        // The same container without its secret, or through the IMDS path: refused, and IMDS never hears of it.
        var guessed = VmLab.Marker("guessed");
        var wrong = lab.Rig.Docker(["exec", "orders", "sh", "-c", AppServiceCall(guessed, "not-the-secret")]);
        Assert.False(wrong.Succeeded, wrong.Output);
        Assert.Contains("401 Unauthorized", wrong.Error, StringComparison.Ordinal);
        var imdsPath = VmLab.Marker("imdspath");
        VmLab.AssertForbidden(lab.Call("orders", imdsPath));
        Assert.Empty(await lab.ImdsRequestsWithAsync(guessed));
        Assert.Empty(await lab.ImdsRequestsWithAsync(imdsPath));
        lab.Passed();
    }

    private static string AppServiceCall(string marker, string header) =>
        $"timeout 5 wget -q -O - --header \"X-IDENTITY-HEADER: {header}\" " +
        $"\"$IDENTITY_ENDPOINT?api-version=2019-08-01&resource=https%3A%2F%2F{marker}.example%2F\"";
}

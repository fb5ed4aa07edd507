using System.Net;
using System.Text.Json.Nodes;
using MsiProxy.Clients;
using static MsiProxy.Tests.Kubernetes.KubernetesTestBed;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>
/// Bindings whose proof needs the App Service identity header, read from a Secret in the pod's namespace through the fake
/// API server: the pod is registered with the value's digest only, fails closed while the Secret cannot be read, and
/// follows a changed value. The value (and its digest) never reaches the logs.
/// </summary>
public sealed class PodIdentityHeaderTests
{
    private const string SecretName = "app-identity";
    private const string SecretKey = "IDENTITY_HEADER";

    private static string Bindings(string proof) => $$"""
        bindings:
          - namespace: team-a
            serviceAccount: api
            identities: ["client_id={{IdentityA}}"]
            proof: {{proof}}
            identityHeaderSecret: { name: {{SecretName}}, key: {{SecretKey}} }
          - namespace: team-b
            serviceAccount: worker
            identities: ["client_id={{IdentityB}}"]
        """;

    private static string NewSecret() => "ih-" + Guid.NewGuid().ToString("N");

    private static void SetSecret(KubernetesTestBed bed, string value) =>
        bed.Api.SetSecret("team-a", SecretName, new Dictionary<string, string> { [SecretKey] = value, ["other"] = "unrelated" });

    [Fact]
    public async Task An_address_and_secret_pod_is_registered_with_the_digest_and_served_only_on_the_app_service_path_with_it()
    {
        var secret = NewSecret();
        var pod = PodJson.Create("team-a", "api-0", "api", "127.0.0.2");
        var plain = PodJson.Create("team-b", "worker-0", "worker", "127.0.0.3");
        await using var bed = await StartWithSecretAsync(Bindings("address+secret"), secret, pod, plain);
        await Eventually(() => bed.RegistrationOf(pod) is not null && bed.RegistrationOf(plain) is not null, what: "both pods are registered");

        var registration = bed.RegistrationOf(pod)!;
        Assert.Equal(ProofPolicy.AddressAndSecret, registration.Proof);
        Assert.True(registration.IdentityHeader!.Matches(secret));
        Assert.False(registration.IdentityHeader.Matches(secret + "x"));
        Assert.Equal(IPAddress.Parse("127.0.0.2"), registration.Address.Network);
        Assert.Equal(ProofPolicy.Address, bed.RegistrationOf(plain)!.Proof);
        Assert.Null(bed.RegistrationOf(plain)!.IdentityHeader);
        Assert.Equal(["team-a/app-identity"], bed.Api.SecretReads.Distinct());

        var before = bed.Emulator.State.Requests.Count;
        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.2", secret));
        Assert.Contains(bed.Emulator.State.Requests.Skip(before), r => r.Query.Contains(IdentityA, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.Unauthorized, await bed.AppServiceTokenStatusAsync("127.0.0.2", NewSecret()));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.2")); // the IMDS path carries no secret
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.3"));         // address bindings are unchanged

        // The right secret from another address is not this pod: address+secret needs both.
        Assert.Equal(HttpStatusCode.Forbidden, await bed.AppServiceTokenStatusAsync("127.0.0.4", secret));
        AssertNeverLogged(bed, secret);
    }

    [Fact]
    public async Task Secret_proof_replicas_sharing_one_secret_are_found_by_it_each_from_its_own_pod_ip()
    {
        var secret = NewSecret();
        var first = PodJson.Create("team-a", "api-0", "api", "127.0.0.5");
        var second = PodJson.Create("team-a", "api-1", "api", "127.0.0.6");
        await using var bed = await StartWithSecretAsync(Bindings("secret"), secret, first, second);
        await Eventually(() => bed.RegistrationOf(first) is not null && bed.RegistrationOf(second) is not null, what: "both replicas are registered");

        Assert.All([bed.RegistrationOf(first)!, bed.RegistrationOf(second)!], r =>
        {
            Assert.Equal(ProofPolicy.Secret, r.Proof);
            Assert.True(r.IdentityHeader!.Matches(secret));
        });
        Assert.Equal("team-a/api-0", bed.Registry.FindBySecret(secret, IPAddress.Parse("127.0.0.5"))!.Name);
        Assert.Equal("team-a/api-1", bed.Registry.FindBySecret(secret, IPAddress.Parse("127.0.0.6"))!.Name);
        Assert.NotNull(bed.Registry.FindBySecret(secret));
        Assert.Null(bed.Registry.FindBySecret(NewSecret()));
        Assert.Null(bed.Registry.Find(IPAddress.Parse("127.0.0.5"))); // found by its secret, not by its address

        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.5", secret));
        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.6", secret));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.AppServiceTokenStatusAsync("127.0.0.7", secret)); // kept its pod IP
        AssertNeverLogged(bed, secret);
    }

    [Theory]
    [InlineData("missing", "Secret team-a/app-identity does not exist")]
    [InlineData("no-key", "Secret team-a/app-identity has no key IDENTITY_HEADER")]
    [InlineData("empty", "key IDENTITY_HEADER of Secret team-a/app-identity is empty")]
    [InlineData("forbidden", "the proxy may not get Secret team-a/app-identity")]
    public async Task A_secret_that_cannot_be_read_leaves_the_pod_unregistered_says_why_and_is_retried(string state, string problem)
    {
        var secret = NewSecret();
        var pod = PodJson.Create("team-a", "api-0", "api", "127.0.0.8");
        await using var bed = await StartAsync(Bindings("address+secret"));
        switch (state)
        {
            case "no-key":
                bed.Api.SetSecret("team-a", SecretName, new Dictionary<string, string> { ["identity-header"] = secret });
                break;
            case "empty":
                bed.Api.SetSecret("team-a", SecretName, new Dictionary<string, string> { [SecretKey] = "" });
                break;
            case "forbidden":
                SetSecret(bed, secret);
                bed.Api.ForbidSecret("team-a", SecretName);
                break;
        }

        bed.Api.Add(pod);

        // What would have registered it happened (the read, the evaluation): the pod is refused, and the logs say why.
        var refused = await WaitForLogAsync(bed, e => e.Level == LogLevel.Warning && e.Message.Contains("team-a/api-0", StringComparison.Ordinal)
            && e.Message.Contains(problem, StringComparison.Ordinal));
        Assert.Contains("matches a binding but is not registered", refused.Message, StringComparison.Ordinal);
        Assert.Contains(bed.Proxy.Logs.Events, e => e.Level == LogLevel.Warning && e.Message.StartsWith("Cannot use the identity header", StringComparison.Ordinal)
            && e.Value("Secret") == "team-a/app-identity key IDENTITY_HEADER" && e.Value("Problem")!.Contains(problem, StringComparison.Ordinal));
        Assert.Null(bed.RegistrationOf(pod));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.AppServiceTokenStatusAsync("127.0.0.8", secret));

        // Retried: once the Secret is readable the pod is registered, without any pod event.
        var reads = bed.Api.ReadsOf("team-a", SecretName);
        await Eventually(() => bed.Api.ReadsOf("team-a", SecretName) > reads, what: "the read is retried");
        bed.Api.ForbidSecret("team-a", SecretName, forbidden: false);
        SetSecret(bed, secret);
        await Eventually(() => bed.RegistrationOf(pod) is not null, what: "the pod is registered once its Secret can be read");
        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.8", secret));
        AssertNeverLogged(bed, secret);
    }

    [Fact]
    public async Task A_changed_secret_takes_effect_and_a_deleted_one_deregisters_the_pod()
    {
        var first = NewSecret();
        var pod = PodJson.Create("team-a", "api-0", "api", "127.0.0.9");
        await using var bed = await StartWithSecretAsync(Bindings("address+secret"), first, pod);
        await Eventually(() => bed.RegistrationOf(pod) is not null, what: "the pod is registered");
        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.9", first));

        // No pod event: the periodic re-read sees the new value.
        var second = NewSecret();
        SetSecret(bed, second);
        await Eventually(() => bed.RegistrationOf(pod)?.IdentityHeader?.Matches(second) == true, what: "the new value is registered");
        Assert.Equal(HttpStatusCode.Unauthorized, await bed.AppServiceTokenStatusAsync("127.0.0.9", first));
        Assert.Equal(HttpStatusCode.OK, await bed.AppServiceTokenStatusAsync("127.0.0.9", second));
        Assert.Contains(bed.Proxy.Logs.Events, e => e.Message.StartsWith("The identity header in", StringComparison.Ordinal)
            && e.Value("Secret") == "team-a/app-identity key IDENTITY_HEADER" && e.Message.Contains("changed", StringComparison.Ordinal));

        // Under proof secret the registry's secret index follows the change too.
        bed.WriteBindings(Bindings("secret"));
        await Eventually(() => bed.RegistrationOf(pod)?.Proof == ProofPolicy.Secret, what: "the pod is re-registered under proof secret");
        Assert.Equal("team-a/api-0", bed.Registry.FindBySecret(second)?.Name);
        var third = NewSecret();
        SetSecret(bed, third);
        await Eventually(() => bed.Registry.FindBySecret(third) is not null, what: "the secret index has the new value");
        Assert.Null(bed.Registry.FindBySecret(second));

        // Fail closed: the Secret deleted, the pod is no longer a client.
        bed.Api.DeleteSecret("team-a", SecretName);
        await Eventually(() => bed.RegistrationOf(pod) is null, what: "the pod is deregistered when its Secret is gone");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.AppServiceTokenStatusAsync("127.0.0.9", third));
        // The registry changes just before the line is written: wait for the line, not only for the change.
        await Eventually(() => bed.Proxy.Logs.Events.Any(e => e.Message.StartsWith("Deregistered pod", StringComparison.Ordinal)
            && e.Value("Pod") == "team-a/api-0" && e.Value("Reason")!.Contains("Secret team-a/app-identity does not exist", StringComparison.Ordinal)),
            what: "the deregistration is logged with its reason");
        AssertNeverLogged(bed, first, second, third);
    }

    [Fact]
    public async Task Only_secrets_that_bindings_name_for_this_nodes_pods_are_read()
    {
        var secret = NewSecret();
        var elsewhere = PodJson.Create("team-a", "api-9", "api", "127.0.0.10", node: "node-2");
        var unbound = PodJson.Create("team-c", "other-0", "other", "127.0.0.11");
        var marker = PodJson.Create("team-b", "worker-0", "worker", "127.0.0.12");
        await using var bed = await StartWithSecretAsync(Bindings("address+secret"), secret, elsewhere, unbound, marker);
        bed.Api.SetSecret("team-c", SecretName, new Dictionary<string, string> { [SecretKey] = secret });
        await Eventually(() => bed.RegistrationOf(marker) is not null, what: "the list is processed");

        // A bound pod of this node is what makes the proxy read its binding's Secret, and no other Secret is ever read.
        var pod = PodJson.Create("team-a", "api-0", "api", "127.0.0.13");
        bed.Api.Add(pod);
        await Eventually(() => bed.RegistrationOf(pod) is not null, what: "the bound pod is registered");
        Assert.Equal(["team-a/app-identity"], bed.Api.SecretReads.Distinct());
    }

    private static async Task<KubernetesTestBed> StartWithSecretAsync(string bindings, string secret, params JsonObject[] seed)
    {
        // The Secret exists before its pods, as when the app's chart created both; the pods arrive through the watch.
        var bed = await StartAsync(bindings);
        SetSecret(bed, secret);
        foreach (var pod in seed)
        {
            bed.Api.Add(pod);
        }

        return bed;
    }

    private static async Task<MsiProxy.Testing.Proxy.CapturedLog> WaitForLogAsync(KubernetesTestBed bed, Func<MsiProxy.Testing.Proxy.CapturedLog, bool> match)
    {
        await Eventually(() => bed.Proxy.Logs.Events.Any(match), what: "the expected log event");
        return bed.Proxy.Logs.Events.First(match);
    }

    private static void AssertNeverLogged(KubernetesTestBed bed, params string[] secrets)
    {
        var logs = bed.Proxy.Logs.AllText();
        Assert.Contains("identity header", logs, StringComparison.Ordinal); // the scan reads the logs that talk about it
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, logs, StringComparison.Ordinal);
            Assert.DoesNotContain(IdentityHeaderDigest.Of(secret).Hex, logs, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(secret)), logs, StringComparison.Ordinal);
        }
    }
}

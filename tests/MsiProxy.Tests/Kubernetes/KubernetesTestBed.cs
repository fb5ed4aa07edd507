using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using MsiProxy.Clients;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>
/// A real ProxyHost with Kubernetes discovery against <see cref="FakeApiServer"/>, the IMDS emulator as upstream, and the
/// bindings file in a directory laid out like a ConfigMap volume (<c>bindings.yaml → ..data/bindings.yaml</c>,
/// <c>..data → ..&lt;timestamp&gt;</c>), updated the way the kubelet does it: a new directory and an atomic symlink swap.
/// Pod IPs are loopback addresses so a test can call the proxy as each pod.
/// </summary>
internal sealed class KubernetesTestBed : IAsyncDisposable
{
    public const string IdentityA = "a1a1a1a1-0000-4000-8000-00000000000a";
    public const string IdentityB = "b2b2b2b2-0000-4000-8000-00000000000b";

    public const string DefaultBindings = $$"""
        bindings:
          - namespace: team-a
            serviceAccount: api
            identities: ["client_id={{IdentityA}}"]
          - namespace: team-b
            serviceAccount: worker
            podSelector:
              matchLabels: { app: worker }
            identities: ["client_id={{IdentityB}}"]
        """;

    private readonly string _directory;
    private int _generation;

    private KubernetesTestBed(string directory, ImdsEmulatorServer emulator, FakeApiServer api)
    {
        _directory = directory;
        Emulator = emulator;
        Api = api;
    }

    public ImdsEmulatorServer Emulator { get; }
    public FakeApiServer Api { get; }
    public ProxyHost Proxy { get; private set; } = null!;
    public ClientRegistry Registry => Proxy.Get<ClientRegistry>();
    public string BindingsPath => Path.Combine(_directory, "bindings.yaml");

    /// <param name="seed">Pods that exist before the proxy starts (seen by its first list).</param>
    public static async Task<KubernetesTestBed> StartAsync(string bindings = DefaultBindings, params JsonObject[] seed)
    {
        var directory = Directory.CreateTempSubdirectory("msiproxy-k8s-").FullName;
        var emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions
        {
            UserAssigned =
            [
                new UserAssignedIdentity(IdentityA, "0a0a0a0a-1111-4111-8111-00000000000a", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a"),
                new UserAssignedIdentity(IdentityB, "0b0b0b0b-1111-4111-8111-00000000000b", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b"),
            ],
        });
        var api = await FakeApiServer.StartAsync();
        var bed = new KubernetesTestBed(directory, emulator, api);
        bed.WriteBindings(bindings);
        foreach (var pod in seed)
        {
            api.Add(pod);
        }

        var settings = ProxyHost.Settings(emulator.BaseAddress);
        settings["MsiProxy:Kubernetes:Enabled"] = "true";
        settings["MsiProxy:Kubernetes:NodeName"] = "node-1";
        settings["MsiProxy:Kubernetes:ApiServer"] = api.BaseAddress.ToString();
        settings["MsiProxy:Kubernetes:BindingsPath"] = bed.BindingsPath;
        settings["MsiProxy:Kubernetes:BindingsPollInterval"] = "00:00:00.100";
        settings["MsiProxy:Kubernetes:ReconnectDelay"] = "00:00:00.050";
        settings["MsiProxy:Kubernetes:MaxReconnectDelay"] = "00:00:00.500";
        settings["MsiProxy:Kubernetes:SecretRefreshInterval"] = "00:00:00.200";
        bed.Proxy = await ProxyHost.StartAsync(settings);
        return bed;
    }

    /// <summary>Writes new bindings exactly as the kubelet updates a ConfigMap volume.</summary>
    public void WriteBindings(string yaml)
    {
        var generation = $"..2025_01_14_09_12_31.{++_generation:D9}";
        Directory.CreateDirectory(Path.Combine(_directory, generation));
        File.WriteAllText(Path.Combine(_directory, generation, "bindings.yaml"), yaml);
        var temporary = Path.Combine(_directory, "..data_tmp");
        File.CreateSymbolicLink(temporary, generation);
        // The atomic swap: rename(2) over the old link (File.Move refuses a link to a directory).
        if (Rename(temporary, Path.Combine(_directory, "..data")) != 0)
        {
            throw new IOException($"rename failed: errno {Marshal.GetLastPInvokeError()}");
        }
        if (!File.Exists(BindingsPath))
        {
            File.CreateSymbolicLink(BindingsPath, Path.Combine("..data", "bindings.yaml"));
        }

        if (_generation > 1)
        {
            Directory.Delete(Path.Combine(_directory, $"..2025_01_14_09_12_31.{_generation - 1:D9}"), recursive: true);
        }
    }

    /// <summary>The status of a token request made from <paramref name="podIp"/>, for <paramref name="clientId"/> or the default identity.</summary>
    public async Task<HttpStatusCode> TokenStatusAsync(string podIp, string? clientId = null)
    {
        using var client = Proxy.CreateClient(podIp);
        using var request = ImdsRequests.Token("https://management.azure.com/", clientId is null ? null : $"client_id={clientId}");
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>
    /// The status of an App Service protocol token request (<c>/msi/token</c>) made from <paramref name="podIp"/> with
    /// <paramref name="identityHeader"/> as <c>X-IDENTITY-HEADER</c>, as the SDKs send it when IDENTITY_ENDPOINT is set.
    /// </summary>
    public async Task<HttpStatusCode> AppServiceTokenStatusAsync(string podIp, string identityHeader)
    {
        using var client = Proxy.CreateClient(podIp);
        using var request = new HttpRequestMessage(HttpMethod.Get,
            "/msi/token?api-version=2019-08-01&resource=" + Uri.EscapeDataString("https://management.azure.com/"));
        request.Headers.Add("X-IDENTITY-HEADER", identityHeader);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    public ClientRegistration? RegistrationOf(JsonObject pod) =>
        Registry.All.FirstOrDefault(r => r.WorkloadId == PodJson.Uid(pod));

    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename([MarshalAs(UnmanagedType.LPUTF8Str)] string from, [MarshalAs(UnmanagedType.LPUTF8Str)] string to);

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Api.DisposeAsync();
        await Emulator.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

using System.Collections.Concurrent;
using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MsiProxy.Configuration;
using MsiProxy.Kubernetes.Api;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.Tests.Kubernetes.Api;

/// <summary>
/// The proxy's own API server client against real Kestrel with TLS on loopback: in a pod it sends the service account's
/// token as it is now (the kubelet rotates it) and trusts only the cluster's CA for the address it dials; a watch stream
/// it cannot read, or that reports an error, ends the watch with the exception the watcher acts on.
/// (PodDiscoveryTests and PodIdentityHeaderTests drive the same client through the proxy against FakeApiServer.)
/// </summary>
public sealed class KubernetesApiTests : IDisposable
{
    private static readonly X509Certificate2 ClusterCa = CreateCa("CN=test cluster CA");
    private static readonly X509Certificate2 OtherCa = CreateCa("CN=someone else's CA");

    private readonly DirectoryInfo _serviceAccount = Directory.CreateTempSubdirectory("msiproxy-sa-");

    public KubernetesApiTests()
    {
        File.WriteAllText(Path.Combine(_serviceAccount.FullName, "ca.crt"), ClusterCa.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_serviceAccount.FullName, "token"), "token-one\n");
    }

    public void Dispose() => _serviceAccount.Delete(recursive: true);

    [Fact]
    public async Task In_a_pod_each_call_carries_the_token_as_the_kubelet_last_wrote_it()
    {
        await using var server = await TlsApiServer.StartAsync(Issue(ClusterCa, "127.0.0.1"), PodListBody);
        using var api = new KubernetesApi(KubernetesConnection.InCluster("127.0.0.1", server.Port.ToString(), _serviceAccount.FullName));

        var first = await api.ListPodsAsync("spec.nodeName=node-1", CancellationToken.None);
        File.WriteAllText(Path.Combine(_serviceAccount.FullName, "token"), "token-two\n"); // rotated
        await api.ListPodsAsync("spec.nodeName=node-1", CancellationToken.None);

        Assert.Equal("42", first.Metadata?.ResourceVersion);
        Assert.Equal(["Bearer token-one", "Bearer token-two"], server.Authorizations);
        Assert.Equal(["/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"], server.Targets);
    }

    [Theory]
    [InlineData("another CA", "127.0.0.1")]
    [InlineData("the cluster CA, for another name", "kubernetes.default.svc")]
    public async Task A_server_certificate_not_from_the_cluster_ca_for_this_address_gets_no_request_and_no_token(string issuer, string name)
    {
        var certificate = Issue(issuer == "another CA" ? OtherCa : ClusterCa, name);
        await using var server = await TlsApiServer.StartAsync(certificate, PodListBody);
        using var api = new KubernetesApi(KubernetesConnection.InCluster("127.0.0.1", server.Port.ToString(), _serviceAccount.FullName));

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => api.ListPodsAsync("spec.nodeName=node-1", CancellationToken.None));

        Assert.IsType<AuthenticationException>(refused.InnerException);
        Assert.Empty(server.Targets); // the handshake failed: no request, so no token, reached the server
    }

    [Fact]
    public async Task A_redirect_is_not_followed_so_the_token_goes_nowhere_else()
    {
        await using var elsewhere = await TlsApiServer.StartAsync(Issue(ClusterCa, "127.0.0.1"), PodListBody);
        await using var server = await TlsApiServer.StartAsync(Issue(ClusterCa, "127.0.0.1"), "", redirectTo: $"https://127.0.0.1:{elsewhere.Port}/api/v1/pods");
        using var api = new KubernetesApi(KubernetesConnection.InCluster("127.0.0.1", server.Port.ToString(), _serviceAccount.FullName));

        var refused = await Assert.ThrowsAsync<KubernetesApiException>(() => api.ListPodsAsync("spec.nodeName=node-1", CancellationToken.None));

        Assert.Equal(HttpStatusCode.TemporaryRedirect, refused.Status);
        Assert.Single(server.Targets);
        Assert.Empty(elsewhere.Targets);
    }

    [Fact]
    public void Outside_a_pod_in_cluster_configuration_is_a_configuration_error_naming_the_setting()
    {
        File.Delete(Path.Combine(_serviceAccount.FullName, "token"));

        var error = Assert.Throws<ConfigurationException>(() => KubernetesConnection.InCluster("10.0.0.1", "443", _serviceAccount.FullName));

        Assert.Contains("MsiProxy:Kubernetes:ApiServer", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"type\":\"ADDED\",\"object\":{\"metadata\":", typeof(KubernetesWatchException))]                         // cut off
    [InlineData("not json at all", typeof(KubernetesWatchException))]
    [InlineData("{\"type\":\"ADDED\"}", typeof(KubernetesWatchException))]                                                   // no object
    [InlineData("{\"type\":\"RENAMED\",\"object\":{\"metadata\":{\"uid\":\"u\"}}}", typeof(KubernetesWatchException))]       // unknown type
    [InlineData("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,\"message\":\"etcd down\"}}", typeof(KubernetesWatchException))]
    [InlineData("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old\"}}", typeof(WatchExpiredException))]
    public async Task A_watch_line_that_is_not_a_pod_event_ends_the_watch_after_the_events_before_it(string line, Type expected)
    {
        await using var server = await TlsApiServer.StartAsync(Issue(ClusterCa, "127.0.0.1"), Good + "\n" + line + "\n");
        var (events, ended) = await WatchToTheEndAsync(server);

        Assert.IsType(expected, ended);
        var upserted = Assert.Single(events);
        Assert.Equal(IPAddress.Parse("10.1.0.5"), upserted.Pod?.Address);
        Assert.Equal("43", upserted.ResourceVersion);
        Assert.Contains("watch=true", Assert.Single(server.Targets), StringComparison.Ordinal);
        Assert.Contains("resourceVersion=42", server.Targets.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_watch_line_longer_than_any_object_ends_the_watch_without_waiting_for_its_newline()
    {
        // A server (or something in its place) that sends one event, then 9 MiB of a line that does not end.
        await using var server = await TlsApiServer.StartAsync(Issue(ClusterCa, "127.0.0.1"), Good + "\r\n", unendedLine: 9 * 1024 * 1024);
        var (events, ended) = await WatchToTheEndAsync(server);

        var refused = Assert.IsType<KubernetesWatchException>(ended);
        Assert.Contains("over 8388608 bytes", refused.Message, StringComparison.Ordinal);
        Assert.Equal("43", Assert.Single(events).ResourceVersion); // the event before it, its CR LF ending included
        // The client gave up on the line by itself and closed the exchange, rather than waiting for its newline.
        Assert.True(await server.ClientLeft.Task.WaitAsync(TimeSpan.FromMinutes(2)), "the client waited for the line to end");
    }

    /// <summary>One pod event, as the API server sends it.</summary>
    private const string Good = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"uid\":\"u-1\",\"namespace\":\"a\",\"name\":\"p\",\"resourceVersion\":\"43\"},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.5\"}}}";

    /// <summary>A watch from resourceVersion 42 against <paramref name="server"/>: the events it yielded, and how it ended.</summary>
    private async Task<(List<PodEvent> Events, Exception? Ended)> WatchToTheEndAsync(TlsApiServer server)
    {
        using var api = new KubernetesApi(KubernetesConnection.InCluster("127.0.0.1", server.Port.ToString(), _serviceAccount.FullName));
        var source = new KubernetesPodSource(api, "node-1", TimeSpan.FromMinutes(5));
        var events = new List<PodEvent>();
        var ended = await Record.ExceptionAsync(async () =>
        {
            await foreach (var e in source.WatchAsync("42", CancellationToken.None))
            {
                events.Add(e);
            }
        });
        return (events, ended);
    }

    private const string PodListBody = """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"42"},"items":[]}""";

    private static X509Certificate2 CreateCa(string subject)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=kube-apiserver", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(name, out var address))
        {
            names.AddIpAddress(address);
        }
        else
        {
            names.AddDnsName(name);
        }

        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // server auth
        using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Kestrel with TLS on 127.0.0.1 answering every GET with one body, recording what each request carried.</summary>
    private sealed class TlsApiServer(WebApplication app) : IAsyncDisposable
    {
        public ConcurrentQueue<string> Targets { get; } = new();
        public ConcurrentQueue<string> Authorizations { get; } = new();
        public int Port { get; private set; }

        /// <summary>True when the client closed the exchange while the unended line was waiting for its end.</summary>
        public TaskCompletionSource<bool> ClientLeft { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public static async Task<TlsApiServer> StartAsync(X509Certificate2 certificate, string body, string? redirectTo = null, int unendedLine = 0)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseKestrelHttpsConfiguration();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(certificate)));
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var server = new TlsApiServer(app);
            app.Run(async context =>
            {
                server.Targets.Enqueue(context.Request.Path + context.Request.QueryString);
                server.Authorizations.Enqueue(context.Request.Headers.Authorization.ToString());
                if (redirectTo is not null)
                {
                    context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
                    context.Response.Headers.Location = redirectTo;
                    return;
                }

                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(body);
                if (unendedLine > 0)
                {
                    var chunk = new byte[64 * 1024];
                    Array.Fill(chunk, (byte)'x');
                    for (var sent = 0; sent < unendedLine; sent += chunk.Length)
                    {
                        await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    }

                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    try
                    {
                        // The line goes on, as far as the client knows: only it can end the exchange now (or this, in a minute).
                        await Task.Delay(TimeSpan.FromMinutes(1), context.RequestAborted);
                        server.ClientLeft.TrySetResult(false);
                    }
                    catch (OperationCanceledException)
                    {
                        server.ClientLeft.TrySetResult(true);
                    }
                }
            });
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            server.Port = new Uri(address).Port;
            return server;
        }

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }
}

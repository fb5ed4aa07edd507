using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>
/// The piece of the Kubernetes API server the proxy talks to, on real Kestrel at 127.0.0.1: <c>GET /api/v1/pods</c> with
/// <c>fieldSelector=spec.nodeName=…</c> as a PodList, and with <c>watch=true&amp;resourceVersion=…</c> as a chunked stream of
/// newline-delimited watch events replayed from that version. Tests add, modify and delete pods, send bookmarks, drop
/// watches, and expire history (HTTP 410 on the next watch, or an ERROR event carrying a 410 Status). Secrets are served
/// at <c>GET /api/v1/namespaces/{namespace}/secrets/{name}</c> with base64 <c>data</c>, or 404 / 403 Status objects as
/// the real server answers a missing Secret or one RBAC does not let the caller get.
/// </summary>
internal sealed class FakeApiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, JsonObject> _pods = new(StringComparer.Ordinal);
    private readonly List<(long Version, string Line)> _history = [];
    private readonly List<Channel<string?>> _watchers = [];
    private readonly Dictionary<string, JsonObject> _secrets = new(StringComparer.Ordinal);
    private readonly HashSet<string> _forbiddenSecrets = new(StringComparer.Ordinal);
    private long _version = 4_812_300;
    private long _expiredThrough;
    private bool _silent;

    private FakeApiServer(WebApplication app, string node)
    {
        _app = app;
        Node = node;
    }

    public string Node { get; }
    public Uri BaseAddress { get; private set; } = null!;
    public ConcurrentQueue<string> Requests { get; } = new();
    public int Lists => Requests.Count(r => !r.Contains("watch=true", StringComparison.Ordinal));
    public int Watches => Requests.Count(r => r.Contains("watch=true", StringComparison.Ordinal));

    /// <summary>Every Secret get, as <c>namespace/name</c>, in order.</summary>
    public ConcurrentQueue<string> SecretReads { get; } = new();

    public int ReadsOf(string ns, string name) => SecretReads.Count(r => r == $"{ns}/{name}");

    public static async Task<FakeApiServer> StartAsync(string node = "node-1")
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeApiServer(app, node);
        app.MapGet("/api/v1/pods", server.HandleAsync);
        app.MapGet("/api/v1/namespaces/{ns}/secrets/{name}", (HttpContext context, string ns, string name) => server.SecretAsync(context, ns, name));
        await app.StartAsync();
        server.BaseAddress = new Uri(app.Urls.First());
        return server;
    }

    public void Add(JsonObject pod) => Publish("ADDED", pod, store: true);

    /// <summary>Creates or replaces an Opaque Secret with these keys and (plain text) values.</summary>
    public void SetSecret(string ns, string name, IReadOnlyDictionary<string, string> data)
    {
        lock (_lock)
        {
            var encoded = new JsonObject();
            foreach (var (key, value) in data)
            {
                encoded[key] = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(value));
            }

            _secrets[$"{ns}/{name}"] = new JsonObject
            {
                ["kind"] = "Secret",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject
                {
                    ["name"] = name,
                    ["namespace"] = ns,
                    ["uid"] = Guid.NewGuid().ToString(),
                    ["resourceVersion"] = (++_version).ToString(CultureInfo.InvariantCulture),
                    ["creationTimestamp"] = "2025-01-14T09:00:00Z",
                },
                ["data"] = encoded,
                ["type"] = "Opaque",
            };
        }
    }

    public void DeleteSecret(string ns, string name)
    {
        lock (_lock)
        {
            _secrets.Remove($"{ns}/{name}");
        }
    }

    /// <summary>From now on a get of this Secret answers 403, as when the proxy's Role does not name it.</summary>
    public void ForbidSecret(string ns, string name, bool forbidden = true)
    {
        lock (_lock)
        {
            if (forbidden)
            {
                _forbiddenSecrets.Add($"{ns}/{name}");
            }
            else
            {
                _forbiddenSecrets.Remove($"{ns}/{name}");
            }
        }
    }

    public void Modify(JsonObject pod) => Publish("MODIFIED", pod, store: true);

    public void Delete(JsonObject pod) => Publish("DELETED", pod, store: false);

    /// <summary>A BOOKMARK moves watchers' resourceVersion on without any object change.</summary>
    public string Bookmark()
    {
        lock (_lock)
        {
            var version = (++_version).ToString(CultureInfo.InvariantCulture);
            var line = new JsonObject
            {
                ["type"] = "BOOKMARK",
                ["object"] = new JsonObject
                {
                    ["kind"] = "Pod",
                    ["apiVersion"] = "v1",
                    ["metadata"] = new JsonObject
                    {
                        ["resourceVersion"] = version,
                        ["creationTimestamp"] = null,
                        ["annotations"] = new JsonObject { ["k8s.io/initial-events-end"] = "true" },
                    },
                    ["spec"] = new JsonObject { ["containers"] = null },
                    ["status"] = new JsonObject(),
                },
            }.ToJsonString();
            foreach (var watcher in _watchers)
            {
                watcher.Writer.TryWrite(line);
            }

            return version;
        }
    }

    /// <summary>Changes made in <paramref name="change"/> reach lists but no watch: events the proxy missed.</summary>
    public void Silently(Action change)
    {
        lock (_lock)
        {
            _silent = true;
            try
            {
                change();
            }
            finally
            {
                _silent = false;
            }
        }
    }

    /// <summary>Ends every open watch stream, as a dropped connection or an API server restart would.</summary>
    public void DropWatches()
    {
        lock (_lock)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Writer.TryComplete();
            }

            _watchers.Clear();
        }
    }

    /// <summary>Forgets all history so far: a watch from any version seen until now answers HTTP 410 Gone.</summary>
    public void ExpireHistory()
    {
        lock (_lock)
        {
            _expiredThrough = _version;
            _history.Clear();
        }
    }

    /// <summary>Sends <c>{"type":"ERROR","object":{Status 410}}</c> on every open watch and ends it, as etcd compaction does.</summary>
    public void SendExpiredError()
    {
        lock (_lock)
        {
            var line = new JsonObject { ["type"] = "ERROR", ["object"] = Gone($"too old resource version: 1 ({_version})") }.ToJsonString();
            foreach (var watcher in _watchers)
            {
                watcher.Writer.TryWrite(line);
                watcher.Writer.TryComplete();
            }

            _watchers.Clear();
            _expiredThrough = _version;
            _history.Clear();
        }
    }

    private void Publish(string type, JsonObject pod, bool store)
    {
        lock (_lock)
        {
            var version = ++_version;
            var copy = pod.DeepClone().AsObject();
            copy["metadata"]!["resourceVersion"] = version.ToString(CultureInfo.InvariantCulture);
            if (type == "DELETED")
            {
                copy["metadata"]!["deletionTimestamp"] = "2025-01-14T10:00:00Z";
                copy["metadata"]!["deletionGracePeriodSeconds"] = 0;
            }

            var uid = PodJson.Uid(copy);
            if (store)
            {
                _pods[uid] = copy;
            }
            else
            {
                _pods.Remove(uid);
            }

            if (_silent || (string?)copy["spec"]!["nodeName"] != Node)
            {
                return; // the field selector hides other nodes' pods from this node's watch
            }

            var line = new JsonObject { ["type"] = type, ["object"] = copy.DeepClone() }.ToJsonString();
            _history.Add((version, line));
            foreach (var watcher in _watchers)
            {
                watcher.Writer.TryWrite(line);
            }
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var query = context.Request.Query;
        Requests.Enqueue(context.Request.QueryString.Value ?? "");
        if (query["fieldSelector"] != $"spec.nodeName={Node}")
        {
            await WriteStatusAsync(context, 400, "BadRequest", $"this test server only serves fieldSelector=spec.nodeName={Node}");
            return;
        }

        if (query["watch"] == "true")
        {
            await WatchAsync(context, query["resourceVersion"].ToString());
            return;
        }

        string body;
        lock (_lock)
        {
            var items = new JsonArray([.. _pods.Values.Where(p => (string?)p["spec"]!["nodeName"] == Node).Select(p => p.DeepClone())]);
            body = new JsonObject
            {
                ["kind"] = "PodList",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject { ["resourceVersion"] = _version.ToString(CultureInfo.InvariantCulture) },
                ["items"] = items,
            }.ToJsonString();
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body);
    }

    private async Task SecretAsync(HttpContext context, string ns, string name)
    {
        var id = $"{ns}/{name}";
        SecretReads.Enqueue(id);
        string? body;
        bool forbidden;
        lock (_lock)
        {
            forbidden = _forbiddenSecrets.Contains(id);
            body = _secrets.TryGetValue(id, out var secret) ? secret.ToJsonString() : null;
        }

        if (forbidden)
        {
            await WriteStatusAsync(context, 403, "Forbidden",
                $"secrets \"{name}\" is forbidden: User \"system:serviceaccount:msi:test-msi-proxy\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{ns}\"");
            return;
        }

        if (body is null)
        {
            await WriteStatusAsync(context, 404, "NotFound", $"secrets \"{name}\" not found");
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body);
    }

    private async Task WatchAsync(HttpContext context, string resourceVersion)
    {
        if (!long.TryParse(resourceVersion, CultureInfo.InvariantCulture, out var from))
        {
            await WriteStatusAsync(context, 400, "BadRequest", "resourceVersion is required for this test server's watch");
            return;
        }

        var channel = Channel.CreateUnbounded<string?>();
        List<string> backlog;
        lock (_lock)
        {
            if (from <= _expiredThrough)
            {
                backlog = [];
                channel = null;
            }
            else
            {
                backlog = [.. _history.Where(h => h.Version > from).Select(h => h.Line)];
                _watchers.Add(channel);
            }
        }

        if (channel is null)
        {
            await WriteStatusAsync(context, 410, "Expired", $"too old resource version: {from} ({_expiredThrough})");
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.StartAsync(); // headers now, body chunked as events arrive
        try
        {
            foreach (var line in backlog)
            {
                await context.Response.WriteAsync(line + "\n");
            }

            await context.Response.Body.FlushAsync();
            await foreach (var line in channel.Reader.ReadAllAsync(context.RequestAborted))
            {
                await context.Response.WriteAsync(line + "\n");
                await context.Response.Body.FlushAsync();
            }
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
        finally
        {
            lock (_lock)
            {
                _watchers.Remove(channel);
            }
        }
    }

    private static JsonObject Gone(string message) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = "Expired",
        ["code"] = 410,
    };

    private static async Task WriteStatusAsync(HttpContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        var status = code == 410 ? Gone(message) : new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = code,
        };
        await context.Response.WriteAsync(status.ToJsonString());
    }

    public async ValueTask DisposeAsync()
    {
        DropWatches();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

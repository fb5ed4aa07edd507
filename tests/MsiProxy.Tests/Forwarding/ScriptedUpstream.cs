using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MsiProxy.Tests.Forwarding;

/// <summary>
/// A loopback Kestrel upstream that answers with whatever a test scripts (redirects, cookies, odd content types) —
/// things the IMDS emulator never sends but a proxy must still handle. Health probes (/metadata/versions) get 200.
/// </summary>
internal sealed class ScriptedUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();

    private ScriptedUpstream(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    /// <summary>Requests other than health probes.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    public static async Task<ScriptedUpstream> StartAsync(Func<HttpContext, Task> answer)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Services.AddLogging(logging => logging.ClearProviders());
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        ScriptedUpstream? self = null;
        app.Run(async context =>
        {
            if (context.Request.Path.Equals("/metadata/versions", StringComparison.OrdinalIgnoreCase))
            {
                await context.Response.WriteAsync("{\"apiVersions\":[\"2018-02-01\"]}");
                return;
            }

            self!._requests.Enqueue(new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? "", context.Request.QueryString.Value ?? "",
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase)));
            await answer(context);
        });
        await app.StartAsync();
        self = new ScriptedUpstream(app, new Uri(app.Urls.First()));
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

internal sealed record RecordedRequest(string Method, string Path, string Query, IReadOnlyDictionary<string, string> Headers);

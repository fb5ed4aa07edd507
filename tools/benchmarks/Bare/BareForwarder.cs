namespace MsiProxy.Benchmarks.Bare;

/// <summary>
/// The ceiling for a .NET cache miss on this machine: Kestrel in, one <see cref="SocketsHttpHandler"/> out, each request
/// sent on to the upstream with <c>Metadata: true</c> and its answer copied back — no cache, no resilience pipeline, no
/// telemetry, no logging. What MsiProxy adds to a miss beyond this is its own work; what this adds beyond nginx is .NET's.
/// </summary>
internal static class BareForwarder
{
    public static async Task<int> RunAsync(string[] args)
    {
        var urls = Arguments.Get(args, "urls");
        var upstream = Arguments.Get(args, "upstream").TrimEnd('/');
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
        {
            Timeout = TimeSpan.FromSeconds(10),
        };
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        var app = builder.Build();
        app.Run(async context =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, upstream + context.Request.Path + context.Request.QueryString);
            request.Headers.TryAddWithoutValidation("Metadata", "true");
            using var answer = await http.SendAsync(request, context.RequestAborted);
            var body = await answer.Content.ReadAsByteArrayAsync(context.RequestAborted);
            var response = context.Response;
            response.StatusCode = (int)answer.StatusCode;
            response.ContentType = "application/json; charset=utf-8";
            response.ContentLength = body.Length;
            await response.Body.WriteAsync(body, context.RequestAborted);
        });
        await app.StartAsync();
        Console.WriteLine($"bare forwarder listening on {urls}, upstream {upstream}");
        await app.WaitForShutdownAsync();
        return 0;
    }
}

namespace MsiProxy.Benchmarks.Bare;

/// <summary>
/// The ceiling for .NET on this machine: Kestrel with nothing in front, answering every request with the same token
/// bytes MsiProxy serves (minimal hosting, no logging, no middleware). Same GC settings as MsiProxy (server GC).
/// </summary>
internal static class BareKestrel
{
    public static async Task<int> RunAsync(string[] args)
    {
        var urls = Arguments.Get(args, "urls");
        var body = await File.ReadAllBytesAsync(Arguments.Get(args, "body"));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        var app = builder.Build();
        app.Run(context =>
        {
            var response = context.Response;
            response.StatusCode = 200;
            response.ContentType = "application/json; charset=utf-8";
            response.ContentLength = body.Length;
            return response.Body.WriteAsync(body).AsTask();
        });
        await app.StartAsync();
        Console.WriteLine($"bare Kestrel listening on {urls}");
        await app.WaitForShutdownAsync();
        return 0;
    }
}

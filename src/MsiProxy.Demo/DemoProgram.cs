using MsiProxy.Hosting;

namespace MsiProxy.Demo;

/// <summary>
/// <c>dotnet run --project src/MsiProxy.Demo</c>: the product's host (<see cref="MsiProxyHost"/>, the same
/// composition as MsiProxy's Program.cs) with the embedded emulator as its upstream. Command-line configuration
/// works as for the product, e.g. <c>-- --urls http://127.0.0.1:9080</c>.
/// </summary>
internal static class DemoProgram
{
    // A named entry point rather than top-level statements: the product's Program class is visible to the test
    // projects, and a second global Program would make it ambiguous there.
    public static async Task<int> Main(string[] args)
    {
        await using var demo = await DemoSetup.StartAsync();
        return await MsiProxyHost.RunAsync(args, demo.Configure, demo.PrintInstructionsWhenStarted);
    }
}

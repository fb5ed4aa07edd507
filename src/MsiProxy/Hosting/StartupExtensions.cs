using Microsoft.Extensions.Options;

namespace MsiProxy.Hosting;

public static class StartupExtensions
{
    /// <summary>Runs the proxy; a configuration error ends the process with exit code 2 and a message naming key and value.</summary>
    public static async Task<int> RunMsiProxyAsync(this WebApplication app)
    {
        try
        {
            await app.RunAsync();
            return 0;
        }
        catch (Exception ex) when (ex is OptionsValidationException or InvalidOperationException { Source: "MsiProxy" })
        {
            var messages = ex is OptionsValidationException validation ? validation.Failures : [ex.Message];
            await Console.Error.WriteLineAsync("MsiProxy cannot start, the configuration is invalid:");
            foreach (var message in messages)
            {
                await Console.Error.WriteLineAsync("  " + message);
            }

            return 2;
        }
    }
}

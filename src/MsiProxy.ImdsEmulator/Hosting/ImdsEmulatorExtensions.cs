using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using MsiProxy.ImdsEmulator.Hosting;

namespace MsiProxy.ImdsEmulator;

/// <summary>Host the emulated IMDS in any ASP.NET Core application.</summary>
public static class ImdsEmulatorExtensions
{
    /// <summary>Registers one <see cref="EmulatorState"/> (using the registered TimeProvider, if any).</summary>
    public static IServiceCollection AddImdsEmulator(this IServiceCollection services, EmulatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(options ?? new EmulatorOptions());
        services.TryAddSingleton(sp => new EmulatorState(sp.GetRequiredService<EmulatorOptions>(), sp.GetService<TimeProvider>()));
        return services;
    }

    /// <summary>
    /// Maps the emulated IMDS as a catch-all, so unknown paths get IMDS's 404 JSON and other verbs its 405.
    /// Endpoints mapped more specifically by the host still win.
    /// </summary>
    public static IEndpointConventionBuilder MapImdsEmulator(this IEndpointRouteBuilder endpoints, EmulatorState state)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var pipeline = new ImdsRequestPipeline(state);
        return endpoints.Map("/{**path}", pipeline.HandleAsync);
    }

    /// <summary>Same, with the state registered by <see cref="AddImdsEmulator"/>.</summary>
    public static IEndpointConventionBuilder MapImdsEmulator(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapImdsEmulator(endpoints.ServiceProvider.GetRequiredService<EmulatorState>());
    }
}

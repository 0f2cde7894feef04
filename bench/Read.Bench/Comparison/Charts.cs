using ScottPlot;

namespace Read.Bench.Comparison;

/// <summary>PNG charts for the comparison and scaling benchmarks (ScottPlot).</summary>
internal static class Charts
{
    public static void Bars(string path, string title, string yLabel, IReadOnlyList<(string Label, double Value)> bars)
    {
        var plot = new Plot();
        var chart = plot.Add.Bars(bars.Select(b => b.Value).ToArray());
        for (var i = 0; i < chart.Bars.Count; i++)
            chart.Bars[i].Label = bars[i].Value.ToString("F0");
        chart.ValueLabelStyle.FontSize = 12;
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, bars.Count).Select(i => (double)i).ToArray(), bars.Select(b => b.Label).ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -30;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.MinimumSize = 90;
        plot.Axes.Margins(bottom: 0);
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.SavePng(path, 900, 550);
    }

    /// <summary>One labelled point per (series, x, y): quality against cost.</summary>
    public static void Scatter(string path, string title, string xLabel, string yLabel, IReadOnlyList<(string Series, string Label, double X, double Y)> points)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        foreach (var series in points.GroupBy(p => p.Series))
        {
            var scatter = plot.Add.ScatterPoints(series.Select(p => p.X).ToArray(), series.Select(p => p.Y).ToArray());
            scatter.LegendText = series.Key;
            scatter.Color = palette.GetColor(index++);
            scatter.MarkerSize = 9;
        }
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.ShowLegend(Edge.Right);
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.SavePng(path, 900, 550);
    }

    public static void Lines(string path, string title, string xLabel, string yLabel, IReadOnlyList<(string Series, double[] X, double[] Y)> lines, bool logY = false)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        foreach (var (series, x, y) in lines)
        {
            var scatter = plot.Add.Scatter(x, logY ? y.Select(Math.Log10).ToArray() : y);
            scatter.LegendText = series;
            scatter.Color = palette.GetColor(index++);
            scatter.LineWidth = 2;
            scatter.MarkerSize = 6;
        }
        if (logY)
        {
            plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
            {
                LabelFormatter = v => Math.Pow(10, v).ToString("G3"),
                MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
                IntegerTicksOnly = true,
            };
        }
        plot.Axes.Bottom.Label.Text = xLabel;
        plot.ShowLegend(Edge.Right);
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.SavePng(path, 900, 550);
    }
}

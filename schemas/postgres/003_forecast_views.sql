-- Forecasts beside the aggregates they predicted: what a dashboard or an accuracy query reads.
-- A view, so it costs nothing to keep and is always current.
CREATE OR REPLACE VIEW forecast_vs_actual AS
SELECT f.site, f.device, f.sensor, f.metric, f.unit, f.window_start, f.window_ms, f.horizon,
       f.model, f.made_at, f.predicted, f.lower, f.upper,
       a.mean AS actual,
       a.mean - f.predicted AS error,
       abs(a.mean - f.predicted) AS abs_error,
       CASE WHEN a.mean <> 0 THEN 100 * abs(a.mean - f.predicted) / abs(a.mean) END AS pct_error,
       a.mean BETWEEN f.lower AND f.upper AS in_interval
FROM forecasts f
LEFT JOIN aggregates a USING (site, device, sensor, metric, window_start, window_ms);

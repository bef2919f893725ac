{# 4x6 in GS1 logistic label for B2B cartons, 203 dpi (812 x 1218 dots), after the GS1 Logistic Label
   Guideline: text segments on top, barcodes below, the SSCC at the bottom.
   Each barcode is GS1-128: Code 128 whose first character after the start is FNC1 (>8), then the
   Application Identifier and its data. Digits alone are packed two a character in subset C (>;, an
   odd last digit in subset B after >6); other data is subset B (>:). k counts the symbol
   characters (start, FNC1, data, check); the module width is the widest (at most 4 dots, GS1's
   0.495 mm) at which 11k + 13 modules plus ten modules of quiet zone either side fit the 812
   dots, and the symbol is centred. #}
^XA
^CI28
^PW812
^LL1218
^LH0,0

{# Ship-from, top left; carton n of m, top right #}
^FO30,24^A0N,22,22^FDFROM^FS
^FO30,50^A0N,26,24^FB500,1,0,L^FH^FD{{ ship_from.company | default('') or ship_from.name }}^FS
^FO30,80^A0N,24,22^FB500,1,0,L^FH^FD{{ ship_from.street }}^FS
^FO30,108^A0N,24,22^FB500,1,0,L^FH^FD{{ ship_from.city }}, {{ ship_from.region | default('') }} {{ ship_from.postal_code }} {{ ship_from.country }}^FS
^FO560,20^GB232,116,3^FS
^FO560,32^A0N,26,24^FB232,1,0,C^FDCARTON^FS
^FO560,66^A0N,56,50^FB232,1,0,C^FH^FD{{ parcel.number }} OF {{ parcel.count }}^FS
^FO20,148^GB772,4,4^FS

{# Ship-to: an empty company or second street line takes no room; later lines move up #}
^FO30,162^A0N,24,24^FDSHIP TO^FS
^FO60,192^A0N,40,36^FB720,1,0,L^FH^FD{{ ship_to.name }}^FS
{% for company in [40 if ship_to.company | default('') else 0] %}
{% for street2 in [40 if ship_to.street2 | default('') else 0] %}
{% if company %}
^FO60,238^A0N,36,32^FB720,1,0,L^FH^FD{{ ship_to.company }}^FS
{% endif %}
^FO60,{{ 238 + company }}^A0N,36,32^FB720,1,0,L^FH^FD{{ ship_to.street }}^FS
{% if street2 %}
^FO60,{{ 278 + company }}^A0N,36,32^FB720,1,0,L^FH^FD{{ ship_to.street2 }}^FS
{% endif %}
^FO60,{{ 278 + company + street2 }}^A0N,36,32^FB720,1,0,L^FH^FD{{ ship_to.city }}{% if ship_to.region | default('') %}, {{ ship_to.region }}{% endif %} {{ ship_to.postal_code }} {{ ship_to.country }}^FS
{% endfor %}
{% endfor %}
^FO20,368^GB772,4,4^FS

{# What the barcodes carry, in words; the order and the ship-to GLN when there is one #}
^FO30,384^A0N,24,22^FH^FDORDER {{ order.order_ref }}^FS
^FO30,414^A0N,24,22^FH^FD{{ shipment.carrier }} {{ shipment.service | upper }}   {{ parcel.weight_kg }} kg{% if parcel.dimensions_mm %}   {{ parcel.dimensions_mm | join(' x ') }} mm{% endif %}^FS
{% if order.ship_to_gln %}
^FO440,384^A0N,24,22^FB352,1,0,R^FH^FDSHIP TO GLN {{ order.ship_to_gln }}^FS
{% endif %}
^FO20,450^GB772,2,2^FS

{# (420) ship-to postal code, within one postal authority: GS1 allows no spaces in it #}
{% if ship_to.postal_code %}
{% for ai, digits, n in [('420' ~ (ship_to.postal_code | replace(' ', '') | upper), (('420' ~ (ship_to.postal_code | replace(' ', '') | upper)) | trim('0123456789')) == '', ('420' ~ (ship_to.postal_code | replace(' ', '') | upper)) | length)] %}
{% for k in [n // 2 + 3 + (n % 2) * 2 if digits else n + 3] %}
^FO30,462^A0N,26,24^FH^FDSHIP TO POSTAL CODE  (420) {{ ai[3:] }}^FS
^FO{{ [0, (812 - ([4, [1, 812 // (11 * k + 33)] | max] | min) * (11 * k + 13)) // 2] | max }},496^BY{{ [4, [1, 812 // (11 * k + 33)] | max] | min }},3,110^BCN,110,N,N,N^FH^FD{% if not digits %}>:>8{{ ai | code128 }}{% elif n % 2 == 0 %}>;>8{{ ai }}{% else %}>;>8{{ ai[:-1] }}>6{{ ai[-1:] }}{% endif %}^FS
{% endfor %}
{% endfor %}
{% endif %}
^FO20,624^GB772,2,2^FS

{# (400) the customer's purchase order number #}
{% if order.po_number %}
{% for ai, digits, n in [('400' ~ order.po_number, (('400' ~ order.po_number) | trim('0123456789')) == '', ('400' ~ order.po_number) | length)] %}
{% for k in [n // 2 + 3 + (n % 2) * 2 if digits else n + 3] %}
^FO30,636^A0N,26,24^FH^FDPURCHASE ORDER  (400) {{ order.po_number }}^FS
^FO{{ [0, (812 - ([4, [1, 812 // (11 * k + 33)] | max] | min) * (11 * k + 13)) // 2] | max }},670^BY{{ [4, [1, 812 // (11 * k + 33)] | max] | min }},3,110^BCN,110,N,N,N^FH^FD{% if not digits %}>:>8{{ ai | code128 }}{% elif n % 2 == 0 %}>;>8{{ ai }}{% else %}>;>8{{ ai[:-1] }}>6{{ ai[-1:] }}{% endif %}^FS
{% endfor %}
{% endfor %}
{% endif %}
^FO20,800^GB772,4,4^FS

{# (00) the SSCC of this carton: 18 digits, so 20 with the AI, ten characters of subset C; 32 mm
   high (256 dots), as GS1 asks of an SSCC on a logistic label #}
^FO30,816^A0N,30,28^FDSSCC^FS
{% if shipment.sscc %}
{% for ai, digits, n in [('00' ~ shipment.sscc, (('00' ~ shipment.sscc) | trim('0123456789')) == '', ('00' ~ shipment.sscc) | length)] %}
{% for k in [n // 2 + 3 + (n % 2) * 2 if digits else n + 3] %}
^FO30,852^A0N,40,36^FB752,1,0,C^FH^FD(00) {{ shipment.sscc }}^FS
^FO{{ [0, (812 - ([4, [1, 812 // (11 * k + 33)] | max] | min) * (11 * k + 13)) // 2] | max }},900^BY{{ [4, [1, 812 // (11 * k + 33)] | max] | min }},3,256^BCN,256,N,N,N^FH^FD{% if not digits %}>:>8{{ ai | code128 }}{% elif n % 2 == 0 %}>;>8{{ ai }}{% else %}>;>8{{ ai[:-1] }}>6{{ ai[-1:] }}{% endif %}^FS
{% endfor %}
{% endfor %}
{% endif %}
^FO30,1180^A0N,22,20^FH^FDStation {{ station }}   Job {{ job_id }}   {{ printed_at }}^FS
^XZ
